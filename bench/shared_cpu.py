"""Training on a shared CPU: torch's default thread count against ``num_threads: free``.

    python bench/shared_cpu.py              # half the CPUs kept busy (1 of 2 on a 2-core machine)
    python bench/shared_cpu.py --busy 3 --model resnet20

oneDNN and OpenMP threads wait for each other at every operation, so one thread on a core that
another job holds stalls them all: the step slows down far more than the load suggests. This
runs the default recipe's training step (bf16 where the CPU has it, batch 256, 28x28) three
times: on the idle machine with torch's default threads, then with ``--busy`` other processes
spinning, once with the default threads and once with the count ``resnet train --threads free``
picks (``resnet.device.free_cpus``, sampled while they spin). It prints the CPU's name and the
ratio of the two loaded steps. A benchmark, not a test: it never fails on time. Run it on an
otherwise idle machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys

import torch
from peak import machine_header, step_seconds

from resnet.cli.arguments import count
from resnet.device import allowed_cpus, free_cpus, resolve_precision


def _spin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    while True:
        pass


# The precision ``amp: auto`` picks on this CPU, in step_seconds' names.
PRECISION = "bf16" if resolve_precision("auto", torch.device("cpu")) == "bf16" else "fp32"


def step_ms(model_name: str, threads: int) -> float:
    """Median milliseconds of one training step of ``model_name`` with ``threads`` threads."""
    torch.set_num_threads(threads)
    return step_seconds(model_name, PRECISION, "engine") * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet9_slim")
    parser.add_argument("--busy", type=count(0), default=None, help="CPUs to keep busy (half)")
    args = parser.parse_args()
    allowed = allowed_cpus()
    busy = args.busy if args.busy is not None else max(1, len(allowed) // 2)
    default = torch.get_num_threads()
    print(machine_header(f"{len(allowed)} CPUs | {args.model}, batch 256, {PRECISION}"))
    idle = step_ms(args.model, default)
    print(f"idle machine, {default} threads: {idle:7.1f} ms/step", flush=True)
    spinners = [
        multiprocessing.Process(target=_spin, args=(cpu,), daemon=True) for cpu in allowed[-busy:]
    ]
    for process in spinners:
        process.start()
    try:
        free = min(free_cpus(), default)
        loaded = step_ms(args.model, default)
        print(f"busy CPUs {busy}, {default} threads: {loaded:7.1f} ms/step", flush=True)
        chosen = step_ms(args.model, free)
        print(f"busy CPUs {busy}, {free} threads (free): {chosen:7.1f} ms/step")
    finally:
        for process in spinners:
            process.terminate()
    print(f"threads free vs default on the shared machine: {loaded / chosen:.2f}x faster")


if __name__ == "__main__":
    from resnet.cli import one_line_errors

    sys.exit(one_line_errors(main, prog="bench/shared_cpu.py"))
