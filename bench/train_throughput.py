"""Training throughput: our pipeline vs the standard torchvision one, same machine, same run.

Ours: the whole dataset as one uint8 tensor, batched crop+flip on tensors (TensorLoader),
channels_last, the model from ``resnet.create_model``. Baseline: a torch Dataset of PIL images
with ``torchvision.transforms`` (RandomCrop with padding, RandomHorizontalFlip, ToTensor,
Normalize) in a ``DataLoader(num_workers=2)``, default memory format, and a torchvision-style
model of the same architecture (torchvision's own resnet18; our resnet20, which torchvision
lacks). Both run the full step: load, forward, loss, backward, SGD update.

    python bench/train_throughput.py            # both cases, prints images/s and the ratio
    python bench/train_throughput.py --warmup 30 --steps 50
    python bench/train_throughput.py --only folder     # 3,000 JPEGs in class folders

A benchmark, not a test: it prints numbers and never fails on time.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from resnet.cli.arguments import count
from resnet.data import ArrayDataset, DatasetMeta, load_dataset, make_loader
from resnet.models import create_model

FASHION = Path("/usr/share/datasets/fashion-mnist")


class PilDataset(torch.utils.data.Dataset):
    """What ``torchvision.datasets.FashionMNIST`` does: one PIL image per __getitem__."""

    def __init__(self, dataset: ArrayDataset, transform) -> None:
        self.images = dataset.images  # (N, C, H, W) uint8
        self.labels = dataset.labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        from PIL import Image

        array = self.images[index].permute(1, 2, 0).numpy()
        image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
        return self.transform(image), int(self.labels[index])


def baseline_loader(dataset: ArrayDataset, batch_size: int, pad: int, workers: int):
    from torchvision import transforms

    meta = dataset.meta
    transform = transforms.Compose(
        [
            transforms.RandomCrop(meta.image_size[0], padding=pad),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(meta.mean, meta.std),
        ]
    )
    return torch.utils.data.DataLoader(
        PilDataset(dataset, transform),
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,
    )


def time_steps(model: nn.Module, batches, warmup: int, steps: int, context=None) -> float:
    """Images per second of ``steps`` full training steps after ``warmup`` untimed ones, in
    float32 eager (``context`` None: the torchvision-standard step) or in ``context`` (the
    engine's ``StepContext``: its precision and kernels)."""
    import contextlib

    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    autocast = context if context is not None else contextlib.nullcontext()
    model.train()
    seen, started = 0, 0.0
    for index, (x, y) in enumerate(itertools.islice(batches, warmup + steps)):
        if index == warmup:
            started = time.perf_counter()
        with autocast:
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if index >= warmup:
            seen += y.numel()
    return seen / (time.perf_counter() - started)


def time_loading(batches, warmup: int, steps: int) -> float:
    """Images per second of the input pipeline alone (no model): what the loader costs."""
    seen, started = 0, 0.0
    for index, (_, y) in enumerate(itertools.islice(batches, warmup + steps)):
        if index == warmup:
            started = time.perf_counter()
        if index >= warmup:
            seen += y.numel()
    return seen / (time.perf_counter() - started)


def forever(loader, epochs: int = 1000):
    for epoch in range(epochs):
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        yield from loader


def upsampled(dataset: ArrayDataset, size: int, count: int) -> ArrayDataset:
    """``count`` images resized to size x size and repeated to RGB (a 64x64 RGB workload)."""
    images = dataset.images[:count].float()
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = images.round().clamp(0, 255).to(torch.uint8).repeat(1, 3, 1, 1)
    meta = DatasetMeta(
        f"{dataset.meta.name}-{size}px-rgb",
        dataset.meta.class_names,
        3,
        (size, size),
        dataset.meta.mean * 3,
        dataset.meta.std * 3,
    )
    return ArrayDataset(images.contiguous(), dataset.labels[:count].clone(), meta)


def run_case(name, dataset, ours_model, baseline_model, batch, pad, args) -> float:
    torch.manual_seed(0)
    if args.loader_steps:
        ours_loader = make_loader(dataset, batch, train=True, pad=pad, drop_last=True)
        ours_rate = time_loading(forever(ours_loader), 3, args.loader_steps)
        base_rate = time_loading(
            forever(baseline_loader(dataset, batch, pad, args.workers)), 3, args.loader_steps
        )
        print(
            f"{name + ' (loader only)':<44} ours {ours_rate:9.1f} img/s   torchvision "
            f"{base_rate:9.1f} img/s   ratio {ours_rate / base_rate:6.2f}x",
            flush=True,
        )
    if args.steps == 0:
        return 0.0
    return compare_steps(
        name,
        ours_model,
        baseline_model,
        forever(
            make_loader(dataset, batch, train=True, pad=pad, drop_last=True, channels_last=True)
        ),
        forever(baseline_loader(dataset, batch, pad, args.workers)),
        args,
    )


def compare_steps(name, ours_model, baseline_model, ours_batches, baseline_batches, args):
    """Full training steps: ours as ``resnet train`` runs them (the default precision, bf16
    where the CPU has it, and kernels), the same with PyTorch's own convolutions only, and in
    float32, against the torchvision pipeline in float32; one line each, same run."""
    import copy

    from resnet.engine.setup import StepContext

    cpu = torch.device("cpu")
    default = StepContext("auto", "auto", cpu)
    label = "bf16" if default.precision == "bf16" else "fp32"
    cases = (
        (f"ours {label} (default)", default),
        (f"ours {label}, native convs", StepContext("auto", "native", cpu)),
        ("ours fp32", StepContext("off", "auto", cpu)),
    )
    ours_model = ours_model.to(memory_format=torch.channels_last)
    baseline_rate = time_steps(baseline_model, baseline_batches, args.warmup, args.steps)
    rates = [
        time_steps(copy.deepcopy(ours_model), ours_batches, args.warmup, args.steps, context)
        for _, context in cases
    ]
    for (what, _), rate in zip(cases, rates):
        print(
            f"{name + ' (full step)':<40} {what:<26} {rate:8.1f} img/s   torchvision fp32 "
            f"{baseline_rate:8.1f} img/s   ratio {rate / baseline_rate:6.2f}x",
            flush=True,
        )
    return rates[0] / baseline_rate


def folder_case(args) -> float:
    """People's own images: 3,000 96x96 JPEGs in class folders, resnet18, batch 32. Ours:
    ``load_dataset(folder)`` (it trains at the images' own median size, 96) with its loader and
    the default precision; baseline: torchvision's ImageFolder + transforms + DataLoader at the
    same size, float32."""
    import tempfile

    import torchvision
    from PIL import Image
    from torchvision import transforms

    train = load_dataset("fashion-mnist", "train", data_dir=args.data_dir)
    rgb = upsampled(train, 96, 3000)
    with tempfile.TemporaryDirectory(prefix="folder-bench-") as tmp:
        for index in range(len(rgb.labels)):
            folder = Path(tmp) / rgb.meta.class_names[int(rgb.labels[index])].replace("/", "-")
            folder.mkdir(exist_ok=True)
            array = rgb.images[index].permute(1, 2, 0).numpy()
            Image.fromarray(array).save(folder / f"{index}.jpg", quality=90)
        ours_data = load_dataset(tmp, "train")
        print(f"folder: {len(ours_data)} JPEGs, trained at {ours_data.meta.image_size}", flush=True)
        ours = make_loader(ours_data, 32, train=True, pad=4, drop_last=True,
                           channels_last=True, num_workers=args.workers)  # fmt: skip
        meta = ours_data.meta
        transform = transforms.Compose([
            transforms.RandomCrop(96, padding=4), transforms.RandomHorizontalFlip(),
            transforms.ToTensor(), transforms.Normalize(meta.mean, meta.std),
        ])  # fmt: skip
        baseline = torch.utils.data.DataLoader(
            torchvision.datasets.ImageFolder(tmp, transform=transform), batch_size=32,
            shuffle=True, num_workers=args.workers, drop_last=True,
            persistent_workers=args.workers > 0,
        )  # fmt: skip
        torch.manual_seed(0)
        ours_model = create_model("resnet18", num_classes=10, in_chans=3)
        base_model = torchvision.models.resnet18(num_classes=10)
        return compare_steps("resnet18, 3000 JPEGs 96x96, batch 32", ours_model, base_model,
                             forever(ours), forever(baseline), args)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=count(0), default=5, help="untimed steps")
    parser.add_argument("--steps", type=count(1), default=20, help="timed steps")
    parser.add_argument("--workers", type=count(0), default=2, help="baseline DataLoader workers")
    parser.add_argument("--data-dir", default=str(FASHION))
    parser.add_argument(
        "--loader-steps",
        type=count(0),
        default=20,
        help="batches for the loader-only line (0: skip)",
    )
    parser.add_argument(
        "--only", choices=("resnet20", "resnet18", "folder"), help="run one case only"
    )
    args = parser.parse_args()
    import torchvision
    from peak import machine_header

    details = f"torchvision {torchvision.__version__}; {args.warmup} warm-up + {args.steps} steps"
    print(machine_header(details), flush=True)
    train = load_dataset("fashion-mnist", "train", data_dir=args.data_dir, val_fraction=0.0)

    # resnet20 on 28x28 Fashion-MNIST, 2-pixel padded crop + flip, batch 256.
    torch.manual_seed(0)
    ours20 = create_model("resnet20", num_classes=10, in_chans=1)
    torch.manual_seed(0)
    base20 = create_model("resnet20", num_classes=10, in_chans=1)
    if args.only == "folder":
        folder_case(args)
        return
    if args.only in (None, "resnet20"):
        run_case("resnet20, 28x28x1, batch 256", train, ours20, base20, 256, 2, args)
    if args.only == "resnet20":
        return

    # resnet18 on 64x64 RGB, 4-pixel padded crop + flip, batch 64.
    rgb64 = upsampled(train, 64, 4096)
    ours18 = create_model("resnet18", num_classes=10, in_chans=3)
    base18 = torchvision.models.resnet18(num_classes=10)
    run_case("resnet18, 64x64x3, batch 64", rgb64, ours18, base18, 64, 4, args)
    if args.only is None:
        folder_case(args)


if __name__ == "__main__":
    from resnet.cli import one_line_errors

    sys.exit(one_line_errors(main, prog="bench/train_throughput.py"))
