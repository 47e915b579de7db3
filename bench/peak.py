"""Know the machine: its measured float32/bfloat16 peak, and what fraction of it a training step
of each model reaches.

    python bench/peak.py                                  # resnet20, resnet9_slim, resnet9
    python bench/peak.py --models resnet9_slim --compile  # also torch.compile'd steps

Peak: the best of a large matrix product and of channels_last 3x3 convolutions (batch 256, the
shapes of the small-image nets), in float32, and in bfloat16 where the CPU has native bfloat16
units (AMX or AVX512-BF16: where ``amp: auto`` trains in it). Elsewhere bfloat16 is emulated,
slower than float32 and never chosen by the engine, so it is skipped unless ``--bf16`` asks (on
a 2-core AVX2 EPYC its rows took 20 minutes and ran at a tenth of float32's speed).

Training step: forward, loss, backward and SGD update on Fashion-MNIST-sized inputs (1x28x28,
batch 256), counted as 3x the forward FLOPs (2 FLOPs per multiply-add); each row's fraction is
of the peak of its own precision. Each step runs "native" (PyTorch's kernels) and "engine" (what
``resnet train`` runs: plus the small-map convolution kernels of ``resnet.engine.kernels``).
Every figure is measured in this run, on this CPU, whose name and bfloat16 units are printed
first. A benchmark, not a test: it never fails on time. Run it on an idle machine: two busy
cores make oneDNN several times slower.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import torch
import torch.nn.functional as F

from resnet.cli.arguments import count
from resnet.device import (
    allowed_cpus,
    busy_cpu_seconds,
    cpu_capabilities,
    free_cpus,
    has_fast_bfloat16,
)
from resnet.engine.budget import median_seconds
from resnet.engine.budget import training_step as engine_training_step
from resnet.engine.setup import StepContext
from resnet.models import create_model, model_entry
from resnet.models.profile import count_gflops

CONV_SHAPES = ((16, 28), (32, 28), (64, 14), (128, 14), (256, 7))  # (channels, side)


def machine_header(details: str = "") -> str:
    """The line every benchmark prints first: the CPU's name, its bfloat16 units, torch and the
    thread count, then ``details``; and a warning line when some CPUs are busy at the start,
    since figures measured beside another job are not comparable (oneDNN's threads wait for
    the slowest one)."""
    caps = cpu_capabilities()
    line = (
        f"CPU: {caps['name']} | ISA {caps['isa']} | AMX {caps['amx']} | "
        f"AVX512-BF16 {caps['avx512_bf16']} | torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads" + (f" | {details}" if details else "")
    )
    free, cpus = free_cpus(), len(allowed_cpus())
    if free < cpus:
        line += (
            f"\nWARNING: only {free} of {cpus} CPUs were idle at the start: another job is "
            "running, so this run's figures are not comparable; rerun it alone"
        )
    return line


_MIN_STOLEN = 0.05  # CPU seconds: 5 ticks of /proc/stat


class OtherLoad:
    """What other processes ran beside this benchmark, from its creation to ``warning()``: the
    machine's busy CPU seconds less this process's own. It catches a job that starts after the
    benchmark does, which the check at the start cannot. This process's worker processes
    (DataLoader, compile workers) count as other load.

    A daemon thread reads the counters every ``interval`` seconds, so a burst is not averaged
    away: a 6-minute job beside a 90-minute run averages 0.06 CPUs, yet it slowed that run's
    first seed by a quarter, since on two cores one stolen core stalls every oneDNN thread.
    ``warning()`` reports the windows in which others kept ``threshold`` CPUs or more busy.
    """

    def __init__(self, interval: float | None = 5.0, threshold: float = 0.2) -> None:
        self.threshold = threshold
        self.first = self.last = self._reading()
        self.busy_seconds = 0.0  # wall seconds of the windows with other load
        self.peak = 0.0  # the most CPUs others kept busy in one window
        self._lock = threading.Lock()
        self._stop = threading.Event()
        if interval is not None and self.first[1] is not None:
            threading.Thread(target=self._watch, args=(interval,), daemon=True).start()

    @staticmethod
    def _reading() -> tuple[float, float | None, float]:
        return time.perf_counter(), busy_cpu_seconds(), time.process_time()

    def _watch(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.sample()

    def sample(self) -> None:
        """Close the window since the last reading (the thread calls this every interval)."""
        with self._lock:
            now = self._reading()
            if now[1] is None or self.last[1] is None:
                return
            wall = now[0] - self.last[0]
            if wall <= 0:
                return
            stolen = (now[1] - self.last[1]) - (now[2] - self.last[2])  # others' CPU seconds
            # /proc/stat counts in ticks of 10 ms: a short window (the last, partial one) could
            # read a tick or two of noise as a busy CPU, so a window must hold 5 ticks or more.
            if stolen >= max(self.threshold * wall, _MIN_STOLEN):
                self.busy_seconds += wall
                self.peak = max(self.peak, stolen / wall)
            self.last = now

    def cpus(self) -> float | None:
        """Average CPUs other processes kept busy up to the last sample (None: no /proc/stat)."""
        (wall, busy, own), (now_wall, now_busy, now_own) = self.first, self.last
        if busy is None or now_busy is None:
            return None
        return max(0.0, ((now_busy - busy) - (now_own - own)) / max(now_wall - wall, 1e-9))

    def warning(self) -> str:
        """'' when the machine stayed to this benchmark; else a line saying it did not. Stops
        the sampling thread."""
        self.sample()  # the last, partial window
        self._stop.set()
        if self.busy_seconds == 0:
            return ""
        return (
            f"WARNING: other processes kept up to {self.peak:.1f} CPUs busy for "
            f"{self.busy_seconds:.0f} s of this run's {self.last[0] - self.first[0]:.0f} s "
            f"({self.cpus() or 0:.2f} on average), so its figures are not comparable; rerun it "
            "alone"
        )


def timed(fn, *, warmup: int = 3, repeat: int = 10) -> float:
    """Median seconds of ``fn()`` over ``repeat`` calls after ``warmup``."""
    return median_seconds(fn, warmup=warmup, repeat=repeat)


def matmul_gflops(dtype: torch.dtype, n: int = 2048) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return 2 * n**3 / timed(lambda: a @ b) / 1e9


def conv_gflops(dtype: torch.dtype, channels: int, side: int, batch: int = 256) -> float:
    x = torch.randn(batch, channels, side, side, dtype=dtype).to(memory_format=torch.channels_last)
    w = torch.randn(channels, channels, 3, 3, dtype=dtype).to(memory_format=torch.channels_last)
    flops = 2 * batch * channels * channels * 9 * side * side
    return flops / timed(lambda: F.conv2d(x, w, padding=1), repeat=6) / 1e9


def conv_peak(precision: str) -> float:
    """GFLOP/s of the best-shaped channels_last 3x3 convolutions at ``precision`` ("fp32" or
    "bf16"): the peak a training step's fraction is taken of."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    return max(conv_gflops(dtype, c, s) for c, s in ((64, 14), (128, 14), (256, 7)))


def measured_precisions(force_bf16: bool = False) -> list[str]:
    """The precisions worth measuring here: float32, and bfloat16 where the CPU runs it natively
    (or ``force_bf16``)."""
    native = has_fast_bfloat16(torch.device("cpu"))
    return ["fp32", "bf16"] if native or force_bf16 else ["fp32"]


def training_step(model: torch.nn.Module, x: torch.Tensor, context: StepContext):
    """A full training step of ``model`` on the batch ``x`` with random labels of 10 classes,
    in the engine's ``context``: forward, loss, backward, SGD update."""
    return engine_training_step(model, x, torch.randint(0, 10, (x.shape[0],)), context)


def step_seconds(name: str, precision: str, mode: str, batch: int = 256) -> float:
    """Median seconds of a training step of ``name`` (1x28x28 inputs) at ``precision`` ("fp32"
    or "bf16"): ``mode`` "native" (PyTorch's kernels), "engine" (the engine's StepContext:
    native plus the small-map convolution kernels, what ``resnet train`` runs) or "compiled"
    (torch.compile)."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=1).to(memory_format=torch.channels_last)
    x = torch.randn(batch, 1, 28, 28).to(memory_format=torch.channels_last)
    amp = "bf16" if precision == "bf16" else "off"
    kernels = "auto" if mode == "engine" else "native"
    step = training_step(model, x, StepContext(amp, kernels, torch.device("cpu")))
    compiled = mode == "compiled"
    run = torch.compile(step) if compiled else step
    return timed(run, warmup=5 if compiled else 2, repeat=8)


def step_gflops(name: str, precision: str, mode: str, batch: int = 256) -> float:
    """Achieved GFLOP/s of ``step_seconds(name, precision, mode, batch)``."""
    model = create_model(name, num_classes=10, in_chans=1)
    flops = 3 * 2 * count_gflops(model, (1, 28, 28)) * 1e9 * batch
    return flops / step_seconds(name, precision, mode, batch) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet9_slim", "resnet9"])
    parser.add_argument("--compile", action="store_true", help="also torch.compile the steps")
    parser.add_argument("--threads", type=count(1), default=None)
    parser.add_argument(
        "--bf16", action="store_true", help="measure bfloat16 even where it is only emulated"
    )
    args = parser.parse_args()
    for name in args.models:  # a typo is refused before minutes of measuring
        model_entry(name)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine_header(), flush=True)
    others = OtherLoad()
    precisions = measured_precisions(args.bf16)
    if "bf16" not in precisions:
        print(
            "bf16: skipped: no native bfloat16 (AMX / AVX512-BF16) on this CPU, so amp: auto "
            "trains in float32 here (--bf16 measures the emulated one, slowly)"
        )
    peaks = {}
    for label in precisions:
        dtype = torch.bfloat16 if label == "bf16" else torch.float32
        mm = matmul_gflops(dtype)
        convs = {f"{c}ch@{s}": conv_gflops(dtype, c, s) for c, s in CONV_SHAPES}
        peaks[label] = max(mm, *convs.values())
        cells = "  ".join(f"{k} {v:,.0f}" for k, v in convs.items())
        print(f"{label}: matmul 2048^2 {mm:,.0f} GFLOP/s | conv3x3 b256 channels_last: {cells}")
    print("peak: " + ", ".join(f"{k} {v:,.0f} GFLOP/s" for k, v in peaks.items()))
    print(
        f"\n{'model':<14} {'precision':<10} {'mode':<8} {'GFLOP/s':>9} "
        f"{'img/s':>8} {'of its peak':>12}"
    )
    for name in args.models:
        per_image = 3 * 2 * count_gflops(create_model(name, in_chans=1), (1, 28, 28))
        modes = ["native", "engine"] + (["compiled"] if args.compile else [])
        for precision in precisions:
            for mode in modes:
                rate = step_gflops(name, precision, mode)
                print(
                    f"{name:<14} {precision:<10} {mode:<8} {rate:>9,.0f} "
                    f"{rate / per_image:>8,.0f} {rate / peaks[precision]:>11.1%}"
                )
    print(others.warning() or "no other load during the run", flush=True)


if __name__ == "__main__":
    from resnet.cli import one_line_errors

    sys.exit(one_line_errors(main, prog="bench/peak.py"))
