"""CPU inference benchmark: torchvision eager vs ours (eager, optimized, compiled) vs onnxruntime.

    .venv/bin/python bench/inference.py                 # a few minutes on 2 idle cores
    .venv/bin/python bench/inference.py --compile       # adds torch.compile (~1 min per model)
    .venv/bin/python bench/inference.py --threads 1     # on a CPU shared with other jobs

On a CPU that other processes also use, two PyTorch threads spin-wait for each other and run
several times slower than one (measured: resnet50 batch 1 at 330 ms with one thread, 1.3-2.8 s
with two), so use ``--threads 1`` there; onnxruntime gets the same number of threads.

Latency is measured at batch 1, throughput at batch 64, for resnet50 at 224x224 and resnet20 at
32x32. The variants are timed round-robin (a few iterations of each in turn, repeated), and the
median per-batch time is reported, so a neighbour process slowing the CPU affects all of them
alike. Ratios are speedups over torchvision's eager ResNet-50; torchvision has no CIFAR ResNet-20,
so for resnet20 the baseline is our own eager model. This is a benchmark, not a test: it never
fails on time.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from resnet import create_model  # noqa: E402
from resnet.deploy.optimize import optimize_for_inference  # noqa: E402

# (model, input side, torchvision builder or None, {batch: (warmup, rounds, iters per round)})
CASES = [
    ("resnet50", 224, "resnet50", {1: (2, 5, 2), 64: (0, 2, 1)}),
    ("resnet20", 32, None, {1: (10, 10, 20), 64: (2, 5, 2)}),
]


def onnxruntime_runner(model: torch.nn.Module, x: torch.Tensor, threads: int) -> Callable:
    import onnxruntime

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            buffer,
            dynamo=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
        )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(
        buffer.getvalue(), options, providers=["CPUExecutionProvider"]
    )
    return lambda batch: session.run(None, {"input": batch.numpy()})[0]


def torch_runner(model: torch.nn.Module) -> Callable:
    def run(batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(batch)

    return run


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


def build_runners(
    name: str, side: int, tv_name: str | None, threads: int, compile_: bool
) -> dict[str, Callable]:
    import torchvision

    torch.manual_seed(0)
    ours = create_model(name, num_classes=1000 if tv_name else 10).eval()
    example = torch.randn(2, 3, side, side)
    runners: dict[str, Callable] = {}
    if tv_name:
        runners["torchvision eager"] = torch_runner(getattr(torchvision.models, tv_name)().eval())
    runners["ours eager"] = torch_runner(ours)
    runners["ours optimized"] = torch_runner(optimize_for_inference(ours))
    if compile_:
        compiled = optimize_for_inference(ours, compile=True)
        runners["ours optimized+compile"] = torch_runner(compiled)
    runners["onnxruntime"] = onnxruntime_runner(ours, example, threads)
    # Check once that every variant computes the same function as our eager model.
    with torch.inference_mode():
        reference = ours(example)
    for label, run in runners.items():
        if label.startswith("torchvision"):
            continue
        diff = (torch.as_tensor(run(example)) - reference).abs().max().item()
        print(f"  {name} {label:<24} max |diff| vs ours eager = {diff:.2e}")
    return runners


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import onnxruntime

    print(
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
        f"{args.threads} threads, CPU"
    )
    rows = []
    for name, side, tv_name, schedule in CASES:
        runners = build_runners(name, side, tv_name, args.threads, args.compile)
        baseline = "torchvision eager" if tv_name else "ours eager"
        for batch, (warmup, rounds, iters) in schedule.items():
            x = torch.randn(batch, 3, side, side)
            seconds = time_round_robin(runners, x, warmup, rounds, iters)
            for label, sec in seconds.items():
                rows.append((name, side, batch, label, sec, seconds[baseline] / sec, baseline))
    header = f"{'model':<9} {'input':>5} {'batch':>5} {'variant':<24} {'ms/batch':>9} "
    print(header + f"{'img/s':>8} {'speedup':>8}  baseline")
    for name, side, batch, label, sec, ratio, baseline in rows:
        print(
            f"{name:<9} {side:>5} {batch:>5} {label:<24} {sec * 1e3:>9.2f} "
            f"{batch / sec:>8.1f} {ratio:>7.2f}x  {baseline}"
        )


if __name__ == "__main__":
    main()
