"""CPU inference benchmark: torchvision eager vs ours (eager, optimized, bfloat16, compiled) vs
onnxruntime (float32 and int8), with the machine's float32 ceiling measured in the same run.

    .venv/bin/python bench/inference.py                 # about 3 minutes on 2 idle cores
    .venv/bin/python bench/inference.py --compile       # adds torch.compile (~1 min per model)
    .venv/bin/python bench/inference.py --threads 1     # on a CPU shared with other jobs

On a CPU that other processes also use, two PyTorch threads spin-wait for each other and run
several times slower than one, so use ``--threads 1`` there; onnxruntime gets as many threads.

Latency is measured at batch 1, throughput at batch 64, for resnet50 at 224x224 and resnet20 at
32x32. torchvision's ResNet-50 is given our model's weights (the state dicts are the same), so
every variant computes the same function from the same numbers: random initialisations differ
in speed (tiny activations can become denormal floats). The variants are timed round-robin (a
few iterations of each in turn, repeated) and the median per-batch time is reported, so a
neighbour process slowing the CPU affects all of them alike. Ratios are speedups over
torchvision's eager ResNet-50; torchvision has no CIFAR ResNet-20, so there the baseline is our
own eager model. ``rel err`` is max |variant - ours eager| / max |ours eager| on a check batch.

Why float32 alone cannot reach 2x at batch 1: the run times a large float32 matrix multiply,
the best rate these cores reach, and prints it over torchvision's batch-1 rate. When that
ceiling is below 2x, only fewer bits (bfloat16, int8) can double the speed. The accuracy cost of
those is measured on real data by ``resnet export --int8`` (see the README), not here: these
weights are random. This is a benchmark, not a test: it never fails on time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from resnet import create_model  # noqa: E402
from resnet.cli.arguments import count  # noqa: E402
from resnet.deploy.optimize import optimize_for_inference  # noqa: E402
from resnet.device import has_fast_bfloat16  # noqa: E402
from resnet.models.profile import count_gflops  # noqa: E402

# (model, input side, torchvision builder or None, {batch: (warmup, rounds, iters per round)})
CASES = [
    ("resnet50", 224, "resnet50", {1: (3, 6, 3), 64: (1, 2, 1)}),
    ("resnet20", 32, None, {1: (10, 10, 20), 64: (2, 5, 2)}),
]


def torch_runner(model: torch.nn.Module) -> Callable:
    def run(batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(batch)

    return run


def onnx_runners(model: torch.nn.Module, side: int, threads: int, workdir: Path) -> dict:
    """float32 and int8 onnxruntime sessions of ``model`` (int8 calibrated on random images:
    the timing does not depend on the calibration, the accuracy is measured elsewhere)."""
    from resnet.deploy import OnnxModule, export_model, quantize_int8

    fp32_path, int8_path = workdir / "fp32.onnx", workdir / "int8.onnx"
    export_model(model, "onnx", fp32_path)
    generator = torch.Generator().manual_seed(0)
    calibration = torch.randn(16, 3, side, side, generator=generator)
    quantize_int8(model, int8_path, calibration=calibration, check=calibration, min_agreement=0)
    return {
        "onnxruntime": torch_runner(OnnxModule(fp32_path, threads=threads)),
        "onnxruntime int8": torch_runner(OnnxModule(int8_path, threads=threads)),
    }


def build_runners(
    name: str, side: int, tv_name: str | None, threads: int, compile_: bool, workdir: Path
) -> tuple[dict[str, Callable], dict[str, float]]:
    import torchvision

    torch.manual_seed(0)
    ours = create_model(name, num_classes=1000 if tv_name else 10).eval()
    runners: dict[str, Callable] = {}
    if tv_name:
        reference = getattr(torchvision.models, tv_name)().eval()
        reference.load_state_dict(ours.state_dict())
        runners["torchvision eager"] = torch_runner(reference)
    runners["ours eager"] = torch_runner(ours)
    runners["ours optimized"] = torch_runner(optimize_for_inference(ours))
    if compile_:
        runners["ours optimized+compile"] = torch_runner(optimize_for_inference(ours, compile=True))
    if has_fast_bfloat16(torch.device("cpu")):  # emulated bfloat16 would only be slower
        bf16 = optimize_for_inference(ours, dtype=torch.bfloat16, compile=compile_)
        runners["ours bfloat16" + ("+compile" if compile_ else "")] = torch_runner(bf16)
    runners.update(onnx_runners(ours, side, threads, workdir))

    example = torch.randn(4, 3, side, side, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = ours(example)
    errors = {}
    for label, run in runners.items():  # also compiles, so the timing starts warm
        got = torch.as_tensor(run(example)).float()
        errors[label] = ((got - expected).abs().max() / expected.abs().max()).item()
    return runners, errors


def time_round_robin(
    runners: dict[str, Callable], x: torch.Tensor, warmup: int, rounds: int, iters: int
) -> dict[str, float]:
    """Median seconds per call of each runner, interleaving the runners round by round."""
    for run in runners.values():
        for _ in range(warmup):
            run(x)
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            for _ in range(iters):
                start = time.perf_counter()
                run(x)
                samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in samples.items()}


def matmul_gflops(threads: int, size: int = 2048, repeats: int = 5) -> float:
    """The best float32 rate of a large matrix multiply through torch's BLAS or numpy's
    (OpenBLAS beats MKL on AMD CPUs): about the most these cores can do in float32."""
    a = torch.randn(size, size)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(repeats))
    # numpy reads its thread count at import, so it runs in a child process with that set.
    code = (
        "import time, numpy as np\n"
        f"a = np.random.rand({size}, {size}).astype(np.float32); a @ a\n"
        "times = []\n"
        f"for _ in range({repeats}):\n"
        "    t = time.perf_counter(); a @ a; times.append(time.perf_counter() - t)\n"
        "print(min(times))\n"
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    child = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if child.returncode == 0:
        best = min(best, float(child.stdout))
    return 2 * size**3 / best / 1e9


def _timed(fn: Callable) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=count(1), default=torch.get_num_threads())
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import onnxruntime

    print(
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
        f"{args.threads} threads, CPU"
    )
    header = f"{'model':<9} {'input':>5} {'batch':>5} {'variant':<24} {'ms/batch':>9} {'img/s':>8}"
    print(header + f" {'GFLOP/s':>8} {'rel err':>8} {'speedup':>8}  baseline")
    ceiling = matmul_gflops(args.threads)
    baseline_rate = None
    with tempfile.TemporaryDirectory() as tmp:
        for name, side, tv_name, schedule in CASES:
            runners, errors = build_runners(
                name, side, tv_name, args.threads, args.compile, Path(tmp)
            )
            flops = 2e9 * count_gflops(create_model(name), (3, side, side))  # per image
            baseline = "torchvision eager" if tv_name else "ours eager"
            for batch, (warmup, rounds, iters) in schedule.items():
                x = torch.randn(batch, 3, side, side)
                seconds = time_round_robin(runners, x, warmup, rounds, iters)
                for label, sec in seconds.items():
                    rate = batch * flops / sec / 1e9
                    print(
                        f"{name:<9} {side:>5} {batch:>5} {label:<24} {sec * 1e3:>9.2f} "
                        f"{batch / sec:>8.1f} {rate:>8.1f} {errors[label]:>8.1e} "
                        f"{seconds[baseline] / sec:>7.2f}x  {baseline}"
                    )
                if tv_name and batch == 1:
                    baseline_rate = batch * flops / seconds[baseline] / 1e9
    print(f"float32 matrix multiply (2048x2048): {ceiling:.1f} GFLOP/s on {args.threads} threads")
    if baseline_rate:
        print(
            f"torchvision eager resnet50 at batch 1 runs at {baseline_rate:.1f} GFLOP/s: a float32 "
            f"variant can be at most ~{ceiling / baseline_rate:.2f}x faster on this CPU"
        )


if __name__ == "__main__":
    from resnet.cli import one_line_errors

    sys.exit(one_line_errors(main, prog="bench/inference.py"))
