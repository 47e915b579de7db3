"""Bad input on the command line ends in one line on stderr and exit code 2."""

from __future__ import annotations

import pytest

from resnet.cli import main
from resnet.cli.train import parse_overrides
from resnet.errors import ConfigError


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("resnet: error:"), err
    return err[0]


def test_unknown_model(tiny_npz, tmp_path, capsys):
    argv = ["train", "--dataset", str(tiny_npz), "--model", "resnet21", "--runs-dir", str(tmp_path)]
    assert main(argv) == 2
    assert "unknown model 'resnet21'" in _one_line_error(capsys)
    assert not (tmp_path / "resnet21-bands").exists()


def test_unknown_recipe_key(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: resnet20\nlearning_rate: 0.1\n")
    assert main(["train", "--recipe", str(recipe)]) == 2
    assert "unknown config key 'learning_rate'" in _one_line_error(capsys)
    assert main(["train", "--set", "epocs=3"]) == 2
    assert "did you mean 'epochs'" in _one_line_error(capsys)


def test_missing_checkpoint(tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(tmp_path / "nope.safetensors")]) == 2
    assert "checkpoint not found" in _one_line_error(capsys)
    assert main(["predict", "--checkpoint", str(tmp_path), "x.png"]) == 2
    assert "no best.json/last.json" in _one_line_error(capsys)
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "no config.yaml" in _one_line_error(capsys)


@pytest.mark.parametrize(
    "name, says",
    [("model.onnx", "an exported ONNX model, which `resnet eval` and `resnet predict` run"),
     ("resnet50.pth", "a weight file, not a run checkpoint; start a run from it"),
     ("BiT-M-R50x1.npz", "a weight file, not a run checkpoint; start a run from it"),
     # timm's and the hub's model.safetensors: a weight file, not a run's without its .json
     ("model.safetensors", "a weight file without model.json beside it, so not a run"),
     ("photo.png", "not a checkpoint; pass a run directory")],
)  # fmt: skip
def test_a_file_of_another_kind_as_checkpoint_says_what_it_is(tmp_path, capsys, name, says):
    (tmp_path / name).write_bytes(b"whatever it holds")
    for command in (["explain", str(tmp_path / "x.png")], ["export", "--format", "onnx"]):
        assert main([*command, "--checkpoint", str(tmp_path / name)]) == 2
        line = _one_line_error(capsys)
        assert f"{name}: {says}" in line and "not found" not in line


def test_bad_device_and_recipe_file(tmp_path, capsys):
    assert main(["train", "--device", "tpu"]) == 2
    assert "device must be auto, cpu, cuda, cuda:N or mps" in _one_line_error(capsys)
    assert main(["train", "--recipe", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml not found" in _one_line_error(capsys)


def test_parse_overrides():
    assert parse_overrides(["lr=0.05", "milestones=[32000, 48000]", "ema=", "name=x"]) == {
        "lr": 0.05,
        "milestones": [32000, 48000],
        "ema": None,
        "name": "x",
    }
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["lr"])


def test_freeze_bn_on_a_net_without_batch_norm_is_refused(tiny_npz, tmp_path, capsys):
    """Group norm keeps no statistics: --freeze-bn would have trained as if never given."""
    runs = tmp_path / "runs"
    argv = ["train", "--dataset", str(tiny_npz), "--model", "resnet8", "--freeze-bn",
            "--set", "model_kwargs={norm_layer: group}", "--runs-dir", str(runs)]  # fmt: skip
    assert main(argv) == 2
    assert "resnet8 has no BatchNorm" in _one_line_error(capsys)
    assert not list(runs.glob("*/*"))  # no run folder with files in it


def test_a_run_is_no_pretrained_file_for_a_net_that_computes_otherwise(tiny_npz, tmp_path, capsys):
    """A resnet8 run with standardised convs fits a plain resnet8 key for key: --pretrained
    loaded it there without a word, into a net that computes something else."""
    runs = tmp_path / "runs"
    common = ["--dataset", str(tiny_npz), "--model", "resnet8", "--max-steps", "1",
              "--runs-dir", str(runs), "--no-progress", "--set", "amp=off"]  # fmt: skip
    standardised = ["--set", "model_kwargs={weight_standardization: true}"]
    assert main(["train", *common, *standardised, "--name", "ws"]) == 0
    capsys.readouterr()
    assert main(["train", *common, "--name", "plain", "--pretrained", str(runs / "ws")]) == 2
    error = _one_line_error(capsys)
    assert "a checkpoint of resnet8 (weight_standardization=True)" in error
    assert "assume weight_standardization=True and resnet8 has False" in error
    again = ["--name", "again", "--pretrained", str(runs / "ws")]
    assert main(["train", *common, *standardised, *again]) == 0  # the same net: it loads
