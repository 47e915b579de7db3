"""``resnet models [PATTERN]`` and ``resnet summary NAME``."""

from __future__ import annotations

import argparse
import json

from resnet.cli.arguments import count
from resnet.errors import ConfigError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser("models", help="list the model zoo with sizes and GFLOPs")
    models.add_argument(
        "pattern", nargs="?", default="*", help="shell-style filter, e.g. 'resnet*'"
    )
    models.add_argument("--json", action="store_true", help="print machine-readable JSON")
    models.set_defaults(func=_models)

    summary = subparsers.add_parser("summary", help="per-stage output shapes and parameters")
    summary.add_argument("name", help="model name, see `resnet models`")
    summary.add_argument(
        "--input-size",
        type=count(1),
        default=None,
        help="input side in pixels (default: the model's)",
    )
    summary.add_argument("--in-chans", type=count(1), default=3, help="input channels")
    summary.add_argument("--num-classes", type=count(1), default=None, help="classifier outputs")
    summary.set_defaults(func=_summary)


def _models(args: argparse.Namespace) -> int:
    import torch

    from resnet.models import create_model, list_models, model_entry
    from resnet.models.profile import count_gflops, count_parameters

    names = list_models(args.pattern)
    if not names:
        raise ConfigError(f"no model matches {args.pattern!r}; try `resnet models` for the list")
    rows = []
    for name in names:
        entry = model_entry(name)
        # On the meta device: shapes without memory or random init, so the 75-model list takes
        # seconds instead of minutes; parameters and FLOPs depend on shapes only.
        with torch.device("meta"):
            model = create_model(name)
        size = entry.default_input_size
        model_dims = getattr(model, "spatial_dims", 2)  # 3 for volumes: (C, D, H, W)
        rows.append(
            {
                "name": name,
                "family": entry.family,
                "params_m": round(count_parameters(model) / 1e6, 3),
                "input_size": size,
                "gflops": round(count_gflops(model, (3,) + (size,) * model_dims), 3),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model':<20} {'family':<9} {'params (M)':>11} {'input':>6} {'GFLOPs':>8}")
    for row in rows:
        print(
            f"{row['name']:<20} {row['family']:<9} {row['params_m']:>11.3f} "
            f"{row['input_size']:>6} {row['gflops']:>8.3f}"
        )
    print("GFLOPs count one multiply-add as one FLOP, as the paper and torchvision do.")
    return 0


def _summary(args: argparse.Namespace) -> int:
    from resnet.models import create_model, model_entry
    from resnet.models.profile import count_gflops, count_parameters, stage_summary

    entry = model_entry(args.name)
    size = entry.default_input_size if args.input_size is None else args.input_size
    if not 8 <= size <= 4096:
        raise ConfigError(f"--input-size {size} is out of range; use 8 to 4096 pixels")
    if not 1 <= args.in_chans <= 4096:
        raise ConfigError(f"--in-chans {args.in_chans} is out of range; use 1 to 4096")
    if args.num_classes is not None and not 1 <= args.num_classes <= 100_000:
        raise ConfigError(f"--num-classes {args.num_classes} is out of range; use 1 to 100000")
    kwargs = {"in_chans": args.in_chans}
    if args.num_classes is not None:
        kwargs["num_classes"] = args.num_classes
    model = create_model(args.name, **kwargs)
    shape = (args.in_chans,) + (size,) * getattr(model, "spatial_dims", 2)
    print(f"{args.name}: input {tuple(shape)}")
    print(f"{'stage':<8} {'output shape':<20} {'params':>12}")
    for row in stage_summary(model, shape):
        print(f"{row['stage']:<8} {str(row['output_shape']):<20} {row['params']:>12,}")
    total = count_parameters(model)
    print(f"total params {total:,}   GFLOPs {count_gflops(model, shape):.3f}")
    return 0
