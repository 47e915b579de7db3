"""Bench scripts end bad input as the CLI does: one ``bench/NAME: error: ...`` line, exit 2,
before anything is measured (they used to print a traceback, some after minutes of work)."""

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.parametrize(
    "script, args, message",
    [
        ("time_to_accuracy.py", ["--recipe", "nope"], "recipe nope not found"),
        ("time_to_accuracy.py", ["--seeds", "0"], "--seeds: expected a whole number >= 1"),
        ("time_to_accuracy.py", ["--set", "lr=abc"], "lr must be a number"),
        ("peak.py", ["--models", "resnt20"], "unknown model 'resnt20'"),
        ("optimizer_step.py", ["--models", "resnt20"], "unknown model 'resnt20'"),
        ("train_throughput.py", ["--steps", "0"], "--steps: expected a whole number >= 1"),
        ("activations.py", ["--batch", "-8"], "--batch: expected a whole number >= 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(script, args, message, monkeypatch, capsys):
    """Run as ``python bench/SCRIPT`` runs it (its ``__main__`` block), in this process: a
    process per case only repeated torch's import (the process itself: the test below)."""
    monkeypatch.delenv("RESNET_DEBUG", raising=False)
    monkeypatch.setattr(sys, "argv", [str(BENCH / script), *args])
    threads = torch.get_num_threads()
    try:
        with pytest.raises(SystemExit) as stopped:
            runpy.run_path(str(BENCH / script), run_name="__main__")
    finally:
        torch.set_num_threads(threads)
    out, err = capsys.readouterr()
    assert stopped.value.code == 2
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert message in last and "error:" in last
    assert "GFLOP/s" not in out  # refused before the machine was measured


def test_a_bench_process_ends_bad_input_with_exit_2_and_one_line():
    env = {k: v for k, v in os.environ.items() if k != "RESNET_DEBUG"}
    done = subprocess.run(
        [sys.executable, str(BENCH / "peak.py"), "--models", "resnt20"], capture_output=True,
        text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench/peak.py: error: unknown model 'resnt20'")


def test_no_bench_flag_is_a_bare_int():
    """A bare ``type=int`` lets 0 and negatives through to the measurement; whole-number flags
    use ``resnet.cli.arguments.count`` as the CLI's do."""
    bare = [p.name for p in sorted(BENCH.glob("*.py")) if "type=int" in p.read_text()]
    assert bare == []
