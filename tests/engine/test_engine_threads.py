"""How many CPU threads a run takes: ``num_threads`` as a number, torch's default, or ``free``
(the CPUs idle when the run starts, read from /proc/stat)."""

from __future__ import annotations

import pytest
import torch
import yaml

import resnet.device as device_module
from resnet.device import busy_cpu_seconds, free_cpus, resolve_threads
from resnet.engine.config import TrainConfig
from resnet.errors import ConfigError


def _fake_stat(monkeypatch, samples, cpus=(0, 1)):
    """/proc/stat reads ``samples`` in turn: each {cpu: (idle ticks, total ticks)}."""
    reads = iter(samples)
    monkeypatch.setattr(device_module, "_cpu_times", lambda: next(reads))
    monkeypatch.setattr(device_module, "allowed_cpus", lambda: list(cpus))
    monkeypatch.setattr(device_module.time, "sleep", lambda seconds: None)


@pytest.mark.parametrize(
    "idle_ticks, expected",
    [
        ((100, 100), 2),  # both idle
        ((95, 93), 2),  # stray blips of 5-7% still leave both
        ((0, 100), 1),  # one CPU spinning at 100%
        ((50, 50), 1),  # two half-busy CPUs make one free one, not two
        ((0, 0), 1),  # all busy: still one thread, never zero
    ],
)
def test_free_cpus_counts_the_idle_share_of_each_cpu(monkeypatch, idle_ticks, expected):
    before = {0: (1000, 5000), 1: (2000, 5000)}
    after = {cpu: (idle + idle_ticks[cpu], total + 100) for cpu, (idle, total) in before.items()}
    _fake_stat(monkeypatch, [before, after])
    assert free_cpus() == expected


def test_free_cpus_only_counts_the_cpus_this_process_may_use(monkeypatch):
    before = {cpu: (0, 0) for cpu in range(4)}
    after = {cpu: (100, 100) for cpu in range(4)}  # all four idle, but only two allowed
    _fake_stat(monkeypatch, [before, after], cpus=(2, 3))
    assert free_cpus() == 2


@pytest.mark.parametrize("load, expected", [(0.0, 4), (1.0, 3), (2.9, 1), (9.0, 1)])
def test_without_proc_stat_the_load_average_stands_in(monkeypatch, load, expected):
    monkeypatch.setattr(device_module, "_cpu_times", lambda: None)
    monkeypatch.setattr(device_module, "allowed_cpus", lambda: [0, 1, 2, 3])
    monkeypatch.setattr(device_module.os, "getloadavg", lambda: (load, load, load), raising=False)
    assert free_cpus() == expected


def test_busy_cpu_seconds_sums_the_busy_ticks_of_the_allowed_cpus(monkeypatch):
    stat = {0: (700, 1000), 1: (100, 1000), 2: (0, 1000)}  # busy 300, 900, 1000 ticks
    _fake_stat(monkeypatch, [stat, None], cpus=(0, 1))
    monkeypatch.setattr(device_module.os, "sysconf", lambda name: 100)
    assert busy_cpu_seconds() == pytest.approx(12.0)  # (300 + 900) / 100 Hz
    assert busy_cpu_seconds() is None  # no /proc/stat


def test_busy_cpu_seconds_follows_this_process_spinning():
    import time

    before, start = busy_cpu_seconds(), time.process_time()
    while time.process_time() - start < 0.3:
        pass
    if before is not None:  # Linux: the spin shows in the machine's busy time
        assert busy_cpu_seconds() - before >= 0.2


def test_free_cpus_reads_this_machine():
    assert 1 <= free_cpus(sample_seconds=0.05) <= (torch.get_num_threads() * 8 or 1)


def test_resolve_threads(monkeypatch):
    monkeypatch.setattr(device_module, "free_cpus", lambda: 7)
    monkeypatch.setattr(device_module, "_DEFAULT_THREADS", 4)
    assert resolve_threads("free") == 4  # never more than torch's default
    assert resolve_threads("free", processes=2) == 3  # 7 free CPUs for 2 processes
    assert resolve_threads("free", processes=16) == 1
    monkeypatch.setattr(device_module, "allowed_cpus", lambda: list(range(6)))
    assert resolve_threads(3) == 3 and resolve_threads(6) == 6
    assert resolve_threads(None) == torch.get_num_threads()
    for bad in ("fre", 0, True, 2.5):
        with pytest.raises(ConfigError, match="threads must be a whole number >= 1 or 'free'"):
            resolve_threads(bad)
    # More threads than CPUs: a 999-thread run on 2 cores had not finished one step in 2 min.
    with pytest.raises(ConfigError, match="threads 7 is more than the 6 CPUs .* use 1 to 6, or"):
        resolve_threads(7)


@pytest.mark.parametrize(
    "value, message",
    [
        ("fre", "num_threads must be a whole number, got 'fre'; or one of: free"),
        (True, "num_threads must be a whole number, got True; or one of: free"),
        (0, r"num_threads must be in \[1, 4096\], got 0"),
    ],
)
def test_config_takes_a_count_or_free(value, message):
    assert TrainConfig(num_threads="free").num_threads == "free"
    assert TrainConfig(num_threads=2.0).num_threads == 2
    with pytest.raises(ConfigError, match=message):
        TrainConfig(num_threads=value)


def test_a_free_run_records_the_count_it_used(tmp_path, monkeypatch):
    """``--threads free`` trains with the idle CPUs and config.yaml records the number, so a
    resume runs with the same count (bitwise) whatever the machine's load is then."""
    import sys
    from pathlib import Path

    from resnet.engine.train import train

    sys.path.insert(0, str(Path(__file__).parent))
    from engine_helpers import make_npz, tiny_config

    monkeypatch.setattr(device_module, "free_cpus", lambda: 1)
    threads = torch.get_num_threads()
    try:
        config = tiny_config(make_npz(tmp_path / "bands.npz"), tmp_path / "runs", max_steps=1)
        result = train(TrainConfig(**{**config, "num_threads": "free"}))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    recorded = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert recorded["num_threads"] == 1


def test_cli_threads_flag(tmp_path, capsys, monkeypatch):
    """``resnet train --threads free|N`` sets num_threads; anything else is a usage error."""
    from resnet.cli import main

    assert main(["train", "--threads", "lots"]) == 2
    assert "--threads: expected a whole number or 'free', got 'lots'" in capsys.readouterr().err
    seen = []
    monkeypatch.setattr("resnet.engine.train.train", lambda cfg, **kw: seen.append(cfg))
    for value, expected in (("free", "free"), ("3", 3)):
        main(["train", "--threads", value, "--runs-dir", str(tmp_path)])
        assert seen and seen[-1].num_threads == expected
