"""The CLI boundary: every bad input or failing environment ends in exactly one
``resnet: error:`` line and exit code 2 (130 for Ctrl-C), never a traceback, and writes nothing
outside the run folder. One test per class of failure, parametrized over its cases."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from resnet.cli import main

SRC = Path(__file__).resolve().parents[2] / "src"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from engine_helpers import make_npz  # noqa: E402


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("resnet: error: ") and "Traceback" not in err
    return lines[0]


@pytest.fixture
def npz(tmp_path) -> Path:
    return make_npz(tmp_path / "bands.npz", train=64, test=32, size=16)


def _train_args(npz: Path, runs: Path, *extra: str) -> list[str]:
    return ["train", "--dataset", str(npz), "--epochs", "1", "--batch-size", "32", "--device",
            "cpu", "--runs-dir", str(runs), "--no-progress", "--set", "log_tensorboard=false",
            "--set", "num_threads=1", *extra]  # fmt: skip


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["seed=x"], "seed must be a whole number"),
        (["epochs=1.5"], "epochs must be a whole number"),
        (["num_threads=0"], r"num_threads must be in [1, 4096]"),
        (["momentum=-1"], "momentum must be in [0, 1)"),
        (["model={a: 1}"], "model must be a string"),
        (["model=resnt20"], "unknown model 'resnt20': did you mean resnet20"),
        (["name=../../x"], "is not a plain folder name"),
        (["device=tpu"], "device must be auto, cpu, cuda, cuda:N or mps"),
        (["lr=nan"], "lr must be a finite number"),
        (
            ["model_kwargs={a: 1, a: 2}"],
            "model_kwargs: '{a: 1, a: 2}' is not a valid YAML value (key",
        ),
    ],
)
def test_config_values_are_checked_before_anything_runs(tmp_path, capsys, overrides, message):
    """A bad value is one line, before any data loads or folder is created."""
    args = ["train", "--dataset", str(tmp_path / "missing.npz"), "--runs-dir", str(tmp_path / "r")]
    for item in overrides:
        args += ["--set", item]
    assert main(args) == 2
    assert message in _one_error_line(capsys)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "flags",
    [
        ["--lr", "0.1", "--set", "lr=0.2"],
        ["--set", "seed=1", "--seed", "2"],
        ["--no-progress", "--set", "progress=true"],
    ],
    ids=["lr", "seed-set-first", "switch"],
)
def test_a_flag_and_a_set_that_disagree_are_refused(tmp_path, capsys, flags):
    """Both given on one command line: neither silently wins."""
    missing = str(tmp_path / "missing.npz")
    assert main(["train", "--dataset", missing, *flags]) == 2
    assert "both set" in _one_error_line(capsys)
    agreeing = ["--lr", "0.1", "--set", "lr=0.1"]
    assert main(["train", "--dataset", missing, *agreeing]) == 2
    assert "missing.npz" in _one_error_line(capsys)  # the same value twice is fine


@pytest.mark.parametrize(
    "content, message",
    [
        (b"model: [resnet20\nlr: 0.1\n", "is not valid YAML"),
        (b"model: resnet20\n\xff\xfe lr: 0.1\n", "is not UTF-8"),
        (b"- just\n- a list\n", "must be a mapping"),
        # PyYAML keeps the last of two equal keys silently: this recipe trained at lr 0.5
        (b"lr: 0.1\nepochs: 2\nlr: 0.5\n", "is not valid YAML (key 'lr' is given twice, line 3)"),
        (b"model_kwargs: {zero_init_residual: true, zero_init_residual: false}\n", "given twice"),
    ],
)
def test_broken_recipes_are_one_line(tmp_path, capsys, content, message):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_bytes(content)
    missing = str(tmp_path / "missing.npz")  # a recipe read wrongly fails here, not by training
    assert main(["train", "--recipe", str(recipe), "--dataset", missing]) == 2
    assert message in _one_error_line(capsys)


def test_os_errors_on_outputs_are_one_line(tmp_path, capsys, npz):
    """An output that lies under a file cannot be created: one line naming the path."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(_train_args(npz, blocker / "runs")) == 2
    line = _one_error_line(capsys)
    assert str(blocker) in line


def test_missing_device_fails_before_any_work(tmp_path, capsys, monkeypatch):
    """`resnet demo --device cuda:0` on a machine without that GPU: one line, no folder."""
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--device", "cuda:0"]) == 2
    assert "no CUDA GPU is visible; use --device cpu" in _one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []
    assert main(["train", "--device", "cuda:1", "--dataset", "fashion-mnist"]) == 2
    assert "no CUDA GPU" in _one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_broken_pipe_is_quiet(tmp_path):
    """`resnet models | head -1`: the reader leaves early; no traceback, as Unix tools do."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    # `true` exits at once without reading: every write of `resnet models` meets a closed pipe.
    command = f"{sys.executable} -m resnet models 'resnet2*' | true; echo ${{PIPESTATUS[0]}}"
    done = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True)
    assert done.stdout.strip() == "141", done.stdout  # 128 + SIGPIPE, as Unix tools exit
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


@pytest.mark.parametrize("category", [UserWarning, DeprecationWarning, RuntimeWarning])
def test_warnings_are_one_line_without_python_source(capsys, category):
    """A warning during a command (ours or a library's) is one ``resnet: warning:`` line, not
    Python's ``file.py:142: UserWarning`` followed by the source line that raised it."""
    import warnings

    from resnet.cli import one_line_errors

    def command():
        warnings.warn(
            "folder has no test/ folder;\n  using the validation split", category, stacklevel=1
        )
        return 0

    assert one_line_errors(command) == 0
    err = capsys.readouterr().err
    assert err == "resnet: warning: folder has no test/ folder; using the validation split\n"


def test_debug_shows_the_traceback(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_bytes(b"\xff\xfe")
    with pytest.raises(Exception, match="not UTF-8"):
        main(["train", "--recipe", str(recipe), "--debug"])


@pytest.mark.parametrize("case", ["empty_state", "other_model", "other_width"])
def test_resume_edge_cases_are_one_line(tmp_path, capsys, npz, case):
    runs = tmp_path / "runs"
    assert main(_train_args(npz, runs, "--name", "run")) == 0
    capsys.readouterr()
    args = ["train", "--resume", str(runs / "run"), "--epochs", "2"]
    if case == "empty_state":
        torch.save({}, runs / "run" / "last.state.pt")
        message = "resume state lacks model"
    elif case == "other_model":
        args += ["--model", "resnet32"]
        message = "model is 'resnet20' there, 'resnet32' given, which would change the network"
    else:
        args += ["--set", "model_kwargs={norm_layer: group}"]
        message = "model_kwargs is {} there, {'norm_layer': 'group'} given, which would change"
    assert main(args) == 2
    assert message in _one_error_line(capsys)


@pytest.mark.parametrize("planned", [["--epochs", "1"], ["--epochs", "3", "--max-steps", "3"]])
def test_a_finished_run_is_not_resumed_and_keeps_its_settings(tmp_path, capsys, npz, planned):
    """Resuming a run with no step left rewrote its config.yaml with settings (here lr 0.9) that
    no step used, and printed "final:" as if it had trained. It is refused; nothing changes."""
    runs = tmp_path / "runs"
    assert main(_train_args(npz, runs, "--name", "run", *planned)) == 0
    before = {p.name: p.read_bytes() for p in (runs / "run").iterdir()}
    capsys.readouterr()
    assert main(["train", "--resume", str(runs / "run"), "--lr", "0.9"]) == 2
    assert "has trained all it was planned to" in _one_error_line(capsys)
    assert {p.name: p.read_bytes() for p in (runs / "run").iterdir()} == before


def test_a_run_whose_data_changed_is_not_resumed(tmp_path, capsys, write_images):
    """A folder that gained images between two sessions has other mean/std statistics: the
    resumed epochs were normalised otherwise than the first ones, without a word."""
    photos = tmp_path / "photos"
    write_images(photos / "train", classes=("cat", "dog"), per_class=4, size=(8, 8))
    write_images(photos / "test", classes=("cat", "dog"), per_class=2, size=(8, 8))
    runs = tmp_path / "runs"
    args = ["train", "--model", "resnet8", "--dataset", str(photos), "--epochs", "1",
            "--batch-size", "4", "--device", "cpu", "--runs-dir", str(runs), "--name", "run",
            "--no-progress", "--set", "log_tensorboard=false",
            "--set", "num_threads=1"]  # fmt: skip
    assert main(args) == 0
    before = {p.name: p.read_bytes() for p in (runs / "run").iterdir()}
    write_images(photos / "train", classes=("cat",), per_class=6, size=(8, 8), seed=5)
    capsys.readouterr()
    assert main(["train", "--resume", str(runs / "run"), "--epochs", "2"]) == 2
    line = _one_error_line(capsys)
    assert "changed since its last epoch (mean" in line and "start a new run" in line
    assert {p.name: p.read_bytes() for p in (runs / "run").iterdir()} == before


def test_weights_that_turn_nan_are_never_checkpointed(tmp_path, capsys, npz, monkeypatch):
    """The last step of an epoch turns a weight NaN while its loss (computed before the update)
    was finite. The run stops with one line and writes no best/last checkpoint."""
    step = torch.optim.SGD.step

    def step_then_break(self, *args, **kwargs):
        result = step(self, *args, **kwargs)
        self.param_groups[0]["params"][0].data.fill_(float("nan"))
        return result

    monkeypatch.setattr(torch.optim.SGD, "step", step_then_break)
    runs = tmp_path / "runs"
    assert main(_train_args(npz, runs, "--name", "nan", "--max-steps", "1")) == 2
    assert "became NaN/inf; the checkpoint was not written" in _one_error_line(capsys)
    written = {p.name for p in (runs / "nan").iterdir()}
    assert not written & {"best.safetensors", "last.safetensors", "last.state.pt"}


def test_resume_records_threads_and_cleans_stale_temp_files(tmp_path, capsys, npz):
    import yaml

    runs = tmp_path / "runs"
    assert main(_train_args(npz, runs, "--name", "run")) == 0
    config = yaml.safe_load((runs / "run" / "config.yaml").read_text())
    assert config["num_threads"] == 1
    stale = runs / "run" / ".last.state.pt.killed.tmp"
    stale.write_bytes(b"x" * 1000)
    os.utime(stale, (0, 0))  # left by a run killed long ago
    assert main(["train", "--resume", str(runs / "run"), "--epochs", "2"]) == 0
    assert not stale.exists()


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("epoch", "three", "epoch must be int"),
        ("model_kwargs", [1, 2], "model_kwargs must be dict"),
        ("model_name", 20, "model_name must be str"),
        ("data_meta.class_names", ["a", "b"], "2 class names for a network with 4 outputs"),
        ("data_meta.class_names", "abcd", "class_names must be a list of strings"),
        ("data_meta.std", [0.0], "std must be positive"),
        ("data_meta.mean", [1.0, 2.0], "mean must hold 1 finite numbers"),
        ("data_meta.image_size", [16, -1], "image_size must be 1-3 sides"),
    ],
)
def test_edited_checkpoint_descriptions_are_one_line(tmp_path, capsys, npz, field, value, message):
    """One reader checks every value of a checkpoint's .json (anyone can edit it)."""
    import json

    runs = tmp_path / "runs"
    assert main(_train_args(npz, runs, "--name", "run")) == 0
    capsys.readouterr()
    path = runs / "run" / "best.json"
    info = json.loads(path.read_text())
    target, key = (info["data_meta"], field.split(".")[1]) if "." in field else (info, field)
    target[key] = value
    path.write_text(json.dumps(info))
    assert main(["eval", "--checkpoint", str(path), "--device", "cpu"]) == 2
    assert message in _one_error_line(capsys)


def test_a_2d_model_given_volumes_is_one_line(tmp_path, capsys):
    import numpy as np

    volumes = np.random.default_rng(0).integers(0, 255, (8, 8, 8, 8)).astype(np.uint8)
    labels = np.arange(8) % 2
    np.savez(tmp_path / "vol.npz", train_images=volumes, train_labels=labels,
             test_images=volumes, test_labels=labels)  # fmt: skip
    args = _train_args(tmp_path / "vol.npz", tmp_path / "runs", "--model", "resnet20")
    assert main(args) == 2
    line = _one_error_line(capsys)
    assert "resnet20 is a 2D network but" in line and "pick a 3D model" in line


@pytest.mark.parametrize(
    "args, message",
    [
        (["summary", "resnet18", "--input-size", "100000"], "--input-size 100000 is out of range"),
        (["summary", "resnet18", "--num-classes", "1000000000"], "out of range"),
    ],
)
def test_sizes_are_bounded_before_any_allocation(capsys, args, message):
    assert main(args) == 2
    assert message in _one_error_line(capsys)


def test_summary_of_a_run_shows_its_network_at_its_data_size(tmp_path, capsys):
    """`resnet summary runs/NAME` was "unknown model 'runs/NAME'": a run's network is now shown
    at the channels and size it was trained on."""
    from resnet.data import DatasetMeta
    from resnet.engine.checkpoint import save_checkpoint
    from resnet.models import create_model
    from resnet.models.profile import count_parameters

    model = create_model("resnet20", num_classes=4, in_chans=1)
    meta = DatasetMeta("bands", ["a", "b", "c", "d"], 1, (20, 24), (0.5,), (0.25,))
    save_checkpoint(tmp_path / "run" / "best", model, data_meta=meta, epoch=1, step=1,
                    metrics={})  # fmt: skip
    assert main(["summary", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{tmp_path / 'run'} (resnet20): input (1, 20, 24)"
    assert out[-1].startswith(f"total params {count_parameters(model):,}")
    assert main(["summary", str(tmp_path / "run"), "--in-chans", "3"]) == 2
    assert "fixes its input channels and classes" in _one_error_line(capsys)
