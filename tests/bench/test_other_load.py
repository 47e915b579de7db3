"""The benchmarks' check for other load (bench/peak.py's OtherLoad): a burst of another job
inside a long run is reported, not averaged away; this process's own work is not counted."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resnet.device import busy_cpu_seconds

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def peak():
    spec = importlib.util.spec_from_file_location("bench_peak", BENCH / "peak.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scripted(peak, monkeypatch, readings):
    """An OtherLoad without its thread, fed (wall, machine busy, own CPU) readings in turn."""
    feed = iter(readings)
    monkeypatch.setattr(peak.OtherLoad, "_reading", staticmethod(lambda: next(feed)))
    return peak.OtherLoad(interval=None)


def test_a_short_burst_in_a_long_run_is_reported(peak, monkeypatch):
    # 100 windows of 5 s, this process busy on 2 CPUs; in one window another job took 1 CPU.
    readings, busy, own = [(0.0, 0.0, 0.0)], 0.0, 0.0
    for window in range(1, 101):
        own += 10.0 if window != 50 else 5.0
        busy += 10.0
        readings.append((5.0 * window, busy, own))
    load = scripted(peak, monkeypatch, readings)
    for _ in range(99):
        load.sample()
    warning = load.warning()
    assert load.cpus() == pytest.approx(0.01)  # the average alone would pass it as idle
    assert load.busy_seconds == pytest.approx(5.0)
    assert load.peak == pytest.approx(1.0)
    assert warning.startswith("WARNING: other processes kept up to 1.0 CPUs busy for 5 s")


def test_own_work_alone_gives_no_warning(peak, monkeypatch):
    readings = [(5.0 * i, 9.9 * i, 9.9 * i) for i in range(4)]
    load = scripted(peak, monkeypatch, readings)
    load.sample()
    load.sample()
    assert load.warning() == ""
    assert load.cpus() == 0.0


def test_a_tick_of_noise_in_a_short_last_window_is_not_a_busy_cpu(peak, monkeypatch):
    # 30 s alone, then a last window of 20 ms in which /proc/stat ticked once more than our own.
    load = scripted(peak, monkeypatch, [(0.0, 0.0, 0.0), (30.0, 60.0, 60.0), (30.02, 60.05, 60.04)])
    load.sample()
    assert load.warning() == ""


def test_without_proc_stat_there_is_nothing_to_report(peak, monkeypatch):
    load = scripted(peak, monkeypatch, [(0.0, None, 0.0), (5.0, None, 1.0)])
    assert load.warning() == "" and load.cpus() is None


@pytest.mark.skipif(busy_cpu_seconds() is None, reason="needs /proc/stat")
def test_the_thread_catches_a_real_process_spinning_beside_it(peak):
    load = peak.OtherLoad(interval=0.1)
    spin = "import time\nend = time.time() + 1.0\nwhile time.time() < end: pass"
    subprocess.run([sys.executable, "-c", spin], check=True)
    time.sleep(0.3)
    assert load.busy_seconds >= 0.5  # the thread sampled while the child ran
    assert "WARNING: other processes kept" in load.warning()
