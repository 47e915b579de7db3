"""Fuzzing the CLI as an adversarial user would: malformed datasets, images, checkpoints and
recipes go through ``resnet.cli.main``. Each run must end in exit code 0 or 2 with at most one
``resnet: error:`` line, no traceback, no allocation failure, and no file outside its run folder.

The address space is capped for the test (its current size + 3 GiB), so a header or label that
asks for an absurd allocation fails the test instead of the machine.
"""

from __future__ import annotations

import contextlib
import json
import resource
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resnet.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from engine_helpers import make_npz  # noqa: E402

FUZZ = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FIELDS = ["epochs", "lr", "batch_size", "seed", "model", "momentum", "amp", "schedule", "pad",
          "milestones", "num_threads", "ema", "model_kwargs", "val_fraction", "name"]  # fmt: skip
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.lists(st.integers(-5, 10**6), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)  # fmt: skip


@contextlib.contextmanager
def bounded_memory(extra_bytes: int = 3 << 30):
    size_kb = next(
        int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmSize:")
    )  # fmt: skip
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (size_kb * 1024 + extra_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _check(code: int, capsys, work: Path, allowed: set[Path]) -> None:
    err = capsys.readouterr().err
    assert code in (0, 2), err
    assert "Traceback" not in err
    assert err.count("resnet: error:") <= 1, err
    assert "allocat" not in err and "MemoryError" not in err, err
    outside = {p for p in work.rglob("*") if not any(p == a or a in p.parents for a in allowed)}
    assert outside == set(), outside


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("trained")
    npz = make_npz(work / "bands.npz", train=64, test=32, size=16)
    args = ["train", "--dataset", str(npz), "--max-steps", "2", "--device", "cpu", "--no-progress",
            "--runs-dir", str(work / "runs"), "--name", "run", "--set", "num_threads=1",
            "--set", "log_tensorboard=false"]  # fmt: skip
    assert main(args) == 0
    return work / "runs" / "run"


def _train_args(dataset: Path, runs: Path) -> list[str]:
    return ["train", "--dataset", str(dataset), "--max-steps", "1", "--device", "cpu",
            "--no-progress", "--runs-dir", str(runs), "--set", "num_threads=1",
            "--set", "log_tensorboard=false", "--batch-size", "8"]  # fmt: skip


@FUZZ
@given(
    labels=st.lists(st.integers(-3, 10**9), min_size=4, max_size=8),
    shape=st.lists(st.integers(0, 40), min_size=1, max_size=4),
    dtype=st.sampled_from(["uint8", "float32", "int64", "object"]),
)
def test_malformed_npz_through_train(tmp_path_factory, capsys, labels, shape, dtype):
    work = tmp_path_factory.mktemp("npz")
    n = len(labels)
    try:
        images = np.zeros((n, *shape), dtype=dtype)
    except (ValueError, MemoryError):
        return
    np.savez(work / "d.npz", train_images=images, train_labels=np.array(labels),
             test_images=images, test_labels=np.array(labels))  # fmt: skip
    with bounded_memory():
        code = main(_train_args(work / "d.npz", work / "runs"))
    _check(code, capsys, work, {work / "d.npz", work / "runs"})


@FUZZ
@given(data=st.binary(max_size=300), keep=st.integers(0, 60))
def test_malformed_images_through_predict(tmp_path_factory, capsys, trained, data, keep):
    from PIL import Image

    work = tmp_path_factory.mktemp("img")
    good = work / "good.png"
    Image.fromarray(np.full((16, 16), 200, np.uint8)).save(good)
    bad = work / "bad.png"
    bad.write_bytes(good.read_bytes()[:keep] + data)
    with bounded_memory():
        code = main(["predict", "--checkpoint", str(trained), "--device", "cpu", str(bad)])
    _check(code, capsys, work, {good, bad})


@FUZZ
@given(field=st.sampled_from(["model_name", "model_kwargs", "data_meta", "epoch", "metrics",
                              "format_version", "train_config"]), value=VALUES)  # fmt: skip
def test_edited_checkpoint_json_through_eval(tmp_path_factory, capsys, trained, field, value):
    import shutil

    work = tmp_path_factory.mktemp("ckpt")
    run = work / "run"
    shutil.copytree(trained, run)
    info = json.loads((run / "best.json").read_text())
    info[field] = value
    (run / "best.json").write_text(json.dumps(info))
    with bounded_memory():
        code = main(["eval", "--checkpoint", str(run / "best.json"), "--device", "cpu",
                     "--dataset", str(trained.parent.parent / "bands.npz")])  # fmt: skip
    _check(code, capsys, work, {run})


@FUZZ
@given(recipe=st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=4))
def test_random_recipes_through_train(tmp_path_factory, capsys, trained, recipe):
    import yaml

    work = tmp_path_factory.mktemp("recipe")
    path = work / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    args = _train_args(trained.parent.parent / "bands.npz", work / "runs")
    with bounded_memory():
        code = main([*args, "--recipe", str(path)])
    _check(code, capsys, work, {path, work / "runs"})
