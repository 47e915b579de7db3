"""``resnet models [PATTERN]``, ``resnet summary NAME``, ``resnet inspect FILE`` and
``resnet import FILE``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from resnet.cli.arguments import count, real, reals
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
    summary.add_argument(
        "name", help="model name (see `resnet models`), or a run folder / checkpoint"
    )
    summary.add_argument(
        "--input-size",
        type=count(1),
        default=None,
        help="input side in pixels (default: the model's)",
    )
    summary.add_argument("--in-chans", type=count(1), help="input channels (default 3)")
    summary.add_argument("--num-classes", type=count(1), default=None, help="classifier outputs")
    summary.set_defaults(func=_summary)

    inspect = subparsers.add_parser(
        "inspect", help="what a weight file holds, and the models (and options) it loads into"
    )
    inspect.add_argument("weights", help="weight file or hub folder")
    inspect.add_argument("--models", default="*", help="shell-style filter of the models tried")
    inspect.add_argument("--json", action="store_true", help="print machine-readable JSON")
    inspect.set_defaults(func=_inspect)
    _register_import(subparsers)


def _register_import(subparsers: argparse._SubParsersAction) -> None:
    imported = subparsers.add_parser(
        "import",
        help="make a weight file (torchvision, timm, Keras, Caffe...) a checkpoint that "
        "predict, explain, eval and export take",
    )
    imported.add_argument("weights", help="weight file, e.g. resnet50-0676ba61.pth")
    imported.add_argument("--model", required=True, help="model to load it into, e.g. resnet50")
    imported.add_argument("--out", required=True, help="new folder for the checkpoint")
    imported.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="model_kwargs=YAML",
        help='model options, e.g. --set "model_kwargs={stride_in_1x1: true}"',
    )
    imported.add_argument(
        "--class-names", default=None, help="text file, one class per line (default: ImageNet's)"
    )
    imported.add_argument(
        "--image-size", type=count(8, 4096), default=None, help="input side (default: model's)"
    )
    imported.add_argument(
        "--mean",
        type=reals((1, 3), 0, 1),
        default=None,
        help="input mean R,G,B or one grey (ImageNet's)",
    )
    imported.add_argument(
        "--std",
        type=reals((1, 3), 0, 1, above=True),
        default=None,
        help="input std R,G,B or one grey (ImageNet's)",
    )
    imported.add_argument(
        "--crop-fraction",
        type=real(0.1, 1),
        default=None,
        help="share of the resized image the centre crop keeps (torchvision's 0.875)",
    )
    imported.set_defaults(func=_import)


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
        # On the meta device: shapes without memory or random init, so the whole list takes
        # seconds instead of minutes; parameters and FLOPs depend on shapes only.
        with torch.device("meta"):
            model = create_model(name)
        size = entry.default_input_size
        spatial = entry.input_spatial(getattr(model, "spatial_dims", 2))  # (D, H, W): volumes
        rows.append(
            {
                "name": name,
                "family": entry.family,
                "params_m": round(count_parameters(model) / 1e6, 3),
                "input_size": size,
                "gflops": round(count_gflops(model, (3, *spatial)), 3),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(20, *(len(row["name"]) for row in rows))  # legacy_seresnext101_32x4d: 25
    print(f"{'model':<{width}} {'family':<9} {'params (M)':>11} {'input':>6} {'GFLOPs':>8}")
    for row in rows:
        print(
            f"{row['name']:<{width}} {row['family']:<9} {row['params_m']:>11.3f} "
            f"{row['input_size']:>6} {row['gflops']:>8.3f}"
        )
    print("GFLOPs count one multiply-add as one FLOP, as the paper and torchvision do.")
    clips = sorted({model_entry(row["name"]).default_frames for row in rows} - {None})
    if clips:
        print(f"Video nets' GFLOPs are for a clip of {clips[0]} frames at the input size.")
    return 0


def _summary(args: argparse.Namespace) -> int:
    from resnet.models import create_model, model_entry

    if Path(args.name).exists():  # a run folder or checkpoint: its network at its data's size
        return _checkpoint_summary(args)
    entry = model_entry(args.name)
    size = entry.default_input_size if args.input_size is None else args.input_size
    in_chans = 3 if args.in_chans is None else args.in_chans
    _check_sizes(size, in_chans, args.num_classes)
    kwargs = {"in_chans": in_chans}
    if args.num_classes is not None:
        kwargs["num_classes"] = args.num_classes
    model = create_model(args.name, **kwargs)
    dims = getattr(model, "spatial_dims", 2)
    spatial = entry.input_spatial(dims) if args.input_size is None else (size,) * dims
    _print_summary(model, (in_chans, *spatial), args.name)
    return 0


def _checkpoint_summary(args: argparse.Namespace) -> int:
    from resnet.engine.checkpoint import load_checkpoint

    if args.in_chans is not None or args.num_classes is not None:
        raise ConfigError(
            f"{args.name} fixes its input channels and classes; drop --in-chans/--num-classes"
        )
    model, info = load_checkpoint(args.name)
    meta = info.get("data_meta") or {}
    channels = meta.get("channels") or (info.get("model_kwargs") or {}).get("in_chans", 3)
    spatial = list(meta.get("image_size") or [])
    if args.input_size is not None or not spatial:
        dims = getattr(model, "spatial_dims", 2)
        default = _default_spatial(info["model_name"], dims)
        spatial = [args.input_size] * dims if args.input_size else list(default)
    _check_sizes(max(spatial), channels, None)
    _print_summary(model, (channels, *spatial), f"{args.name} ({info['model_name']})")
    return 0


def _default_spatial(name: str, spatial_dims: int) -> tuple[int, ...]:
    from resnet.models import model_entry

    return model_entry(name).input_spatial(spatial_dims)


def _check_sizes(size: int, in_chans: int, num_classes) -> None:
    if not 8 <= size <= 4096:
        raise ConfigError(f"--input-size {size} is out of range; use 8 to 4096 pixels")
    if not 1 <= in_chans <= 4096:
        raise ConfigError(f"--in-chans {in_chans} is out of range; use 1 to 4096")
    if num_classes is not None and not 1 <= num_classes <= 100_000:
        raise ConfigError(f"--num-classes {num_classes} is out of range; use 1 to 100000")


def _print_summary(model, shape: tuple[int, ...], label: str) -> None:
    from resnet.models.profile import count_gflops, count_parameters, stage_summary

    print(f"{label}: input {tuple(shape)}")
    print(f"{'stage':<8} {'output shape':<20} {'params':>12}")
    for row in stage_summary(model, shape):
        print(f"{row['stage']:<8} {str(row['output_shape']):<20} {row['params']:>12,}")
    total = count_parameters(model)
    print(f"total params {total:,}   GFLOPs {count_gflops(model, shape):.3f}")


def _inspect(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from resnet.engine.checkpoint import checkpoint_assumptions, weight_file
    from resnet.models.identify import inspect_weights

    source = weight_file(args.weights)
    known = checkpoint_assumptions(args.weights)  # a run checkpoint's .json says how it was built
    report = inspect_weights(source, args.models, known)
    if args.json:
        print(json.dumps(asdict(report), indent=2))
        return 0
    classifier = f"a {report.classes}-class classifier" if report.classes else "no classifier"
    print(
        f"{args.weights}: {report.tensors} tensors, {report.values / 1e6:.3f} M values, "
        f"{classifier}"
    )
    if report.kind:
        print(f"  {report.kind}")
    if report.converted:
        print(f"  {report.converted}")
    if not report.fits:
        print(f"  loads into no model matching {args.models!r} as it is")
        return 0
    first = next(iter(report.fits))
    options = report.command_options(first)
    options = f" {options}" if options else ""
    print(f"  loads into: {', '.join(report.fits)}")
    channels = report.fits[first].get("in_chans")
    if channels is not None:
        print(f"  its stem takes {channels}-channel images: train it on {channels}-channel data")
    print(f"  e.g. resnet train --model {first} --pretrained {args.weights}{options}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from resnet.cli.train import parse_overrides
    from resnet.engine.checkpoint import weight_file
    from resnet.engine.imported import import_weights

    overrides = parse_overrides(args.set)
    unknown = sorted(set(overrides) - {"model_kwargs"})
    if unknown or not isinstance(overrides.get("model_kwargs", {}), dict):
        raise ConfigError(
            f"resnet import --set takes model_kwargs={{...}} only, got {', '.join(args.set)}"
        )
    class_names = None
    if args.class_names is not None:
        class_names = _class_names_file(Path(args.class_names))
    imported = import_weights(
        weight_file(args.weights),
        args.model,
        args.out,
        model_kwargs=overrides.get("model_kwargs"),
        class_names=class_names,
        image_size=args.image_size,
        mean=args.mean,
        std=args.std,
        crop_fraction=args.crop_fraction,
    )
    meta = imported.meta
    print(f"{args.weights}: {imported.report}")
    hub = f" (from its hub folder: {', '.join(imported.from_hub)})" if imported.from_hub else ""
    print(
        f"checkpoint {imported.path.parent}: {meta.num_classes} classes, {meta.image_size[0]}px "
        f"centre crops of {meta.crop_fraction:g} of the resized image, normalised with mean "
        f"{', '.join(f'{v:g}' for v in meta.mean)}, std {', '.join(f'{v:g}' for v in meta.std)}"
        f"{hub}"
    )
    print(f"try: resnet predict --checkpoint {imported.path.parent} IMAGE")
    return 0


def _class_names_file(path: Path) -> list[str]:
    """One class name a line; blank lines at the end are ignored, one between names is an
    error (it would shift every later name onto the wrong output)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"--class-names {path} is not UTF-8 text; pass a text file") from None
    except OSError as error:
        raise ConfigError(f"--class-names {path}: {error.strerror}; pass a text file") from None
    lines = [line.strip() for line in text.rstrip().splitlines()]
    if "" in lines:
        raise ConfigError(
            f"--class-names {path}: line {lines.index('') + 1} is blank; give one name a line"
        )
    return lines
