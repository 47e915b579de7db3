"""``resnet train``, ``resnet eval`` and ``resnet predict``: each parses and calls one function.

resnet train --recipe recipes/fashion-mnist.yaml --epochs 5 --set label_smoothing=0.1
resnet train --resume runs/resnet20-fashion-mnist
torchrun --nproc_per_node=2 -m resnet train --recipe recipes/fashion-mnist.yaml
resnet eval --checkpoint runs/resnet20-fashion-mnist --tta --json
resnet predict --checkpoint runs/resnet20-fashion-mnist shirt.png boot.jpg
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from resnet.cli.arguments import count, real
from resnet.errors import ConfigError

__all__ = ["register", "parse_overrides", "thread_count"]


def thread_count(text: str) -> Any:
    """``--threads``: a whole number, or ``free`` (the CPUs idle when the run starts)."""
    if text == "free":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number or 'free', got {text!r}"
        ) from None


# Common flags: (flag, config field, type, help).
_FLAGS = (
    ("--model", "model", str, "model name, see `resnet models`"),
    ("--dataset", "dataset", str, "dataset name, image folder or .npz file"),
    ("--data-dir", "data_dir", str, "directory holding the dataset files"),
    ("--epochs", "epochs", int, "number of epochs"),
    ("--max-steps", "max_steps", int, "stop after this many iterations"),
    ("--time-budget", "time_budget", real(), "seconds the run may take here: steps fit to it"),
    ("--batch-size", "batch_size", int, "global batch size"),
    ("--lr", "lr", real(), "peak learning rate"),
    ("--device", "device", str, "auto | cpu | cuda | mps"),
    ("--threads", "num_threads", thread_count, "CPU threads, or free: the CPUs idle at start"),
    ("--seed", "seed", int, "random seed"),
    ("--name", "name", str, "run folder name under runs_dir"),
    ("--runs-dir", "runs_dir", str, "where run folders go"),
    (
        "--train-subset",
        "train_subset",
        int,
        "train on N images only (a folder: spread over its classes)",
    ),
    ("--pretrained", "pretrained", str, "weight file (torchvision, timm, Caffe...) to start from"),
    ("--freeze-stages", "freeze_stages", int, "freeze the stem and the first K stages"),
    ("--backbone-lr-scale", "backbone_lr_scale", real(), "lr multiplier of the backbone"),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="train a model (a recipe plus overrides)")
    train.add_argument(
        "--recipe", help="packaged recipe name (see --list-recipes) or a YAML file of your own"
    )
    train.add_argument(
        "--list-recipes", action="store_true", help="list the packaged recipes and exit"
    )
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last epoch")
    for flag, dest, kind, text in _FLAGS:
        train.add_argument(
            flag, dest=f"opt_{dest}", type=kind, default=None, metavar=dest.upper(), help=text
        )
    train.add_argument(
        "--freeze-bn", action="store_true", default=None, help="keep BatchNorm statistics fixed"
    )
    train.add_argument(
        "--no-progress", action="store_true", help="no tqdm bars (the column log stays)"
    )
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config field (YAML value), e.g. --set model_kwargs={norm_layer: group}",
    )
    train.set_defaults(func=_train)

    evaluate = subparsers.add_parser("eval", help="score a checkpoint on a dataset split")
    evaluate.add_argument(
        "--checkpoint",
        required=True,
        help="run dir, .safetensors, .json, or an exported .onnx, .pt2 or TorchScript file",
    )
    evaluate.add_argument(
        "--dataset",
        help="dataset (default: the one it was trained on); another one is read at the "
        "checkpoint's size and statistics, its classes matched by name, and a plain folder "
        "of new photos (root/<class>/<image>) is scored whole",
    )
    evaluate.add_argument("--data-dir", help="directory holding the dataset files")
    evaluate.add_argument("--split", default="test", choices=("train", "val", "test"))
    _add_tta_arguments(evaluate)
    evaluate.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    evaluate.add_argument("--batch-size", type=count(1), default=256)
    evaluate.add_argument("--out-dir", help="write confusion_matrix.csv/.png here")
    evaluate.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16"),
        help="score the network deployed at this precision (BN folded; default: as trained)",
    )
    evaluate.add_argument(
        "--present-classes-only",
        action="store_true",
        help="rank only the classes the scored data holds (ImageNet-R's and -A's protocol: "
        "200 of an ImageNet classifier's 1,000)",
    )
    evaluate.add_argument("--json", action="store_true", help="print machine-readable JSON")
    evaluate.set_defaults(func=_eval)

    predict = subparsers.add_parser("predict", help="classify image files with a checkpoint")
    predict.add_argument(
        "--checkpoint",
        required=True,
        help="run dir, .safetensors, .json, or an exported .onnx, .pt2 or TorchScript file",
    )
    predict.add_argument("inputs", nargs="+", help="image files, or folders of them")
    predict.add_argument(
        "--topk", type=count(1), default=5, help="most probable classes to list (at most all)"
    )
    _add_tta_arguments(predict)
    predict.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    predict.add_argument("--json", action="store_true", help="print machine-readable JSON")
    predict.set_defaults(func=_predict)


def _add_tta_arguments(parser: argparse.ArgumentParser) -> None:
    """Test-time augmentation, the same for eval and predict (``tta_views``)."""
    parser.add_argument("--tta", action="store_true", help="average with the mirror image")
    parser.add_argument(
        "--tta-shift",
        type=count(0),
        default=0,
        metavar="PIXELS",
        help="also average with the image shifted this many pixels left and right",
    )


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["lr=0.05", "milestones=[32000, 48000]"]`` -> ``{"lr": 0.05, "milestones": [...]}``."""
    import yaml

    from resnet.io import load_yaml

    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            overrides[key.strip()] = load_yaml(raw) if raw.strip() else None
        except yaml.YAMLError as error:
            reason = " ".join(str(getattr(error, "problem", None) or "invalid").split())
            raise ConfigError(
                f"--set {key}: {raw!r} is not a valid YAML value ({reason})"
            ) from None
    return overrides


def _train(args: argparse.Namespace) -> int:
    from resnet.engine.budget import process_started
    from resnet.engine.config import TrainConfig, list_recipes
    from resnet.engine.train import train

    if args.list_recipes:
        recipes = list_recipes()
        width = max(map(len, recipes))
        for name, line in recipes.items():
            print(f"{name:<{width}}  {line}")
        return 0

    overrides = parse_overrides(args.overrides)
    flags = [(flag, dest, getattr(args, f"opt_{dest}")) for flag, dest, _, _ in _FLAGS]
    flags += [("--freeze-bn", "freeze_bn", True if args.freeze_bn else None)]
    flags += [("--no-progress", "progress", False if args.no_progress else None)]
    for flag, dest, value in flags:
        if value is None:
            continue
        if dest in overrides and overrides[dest] != value:
            raise ConfigError(
                f"{flag} and --set {dest}={overrides[dest]} both set {dest}; keep one of them"
            )
        overrides[dest] = value
    if args.resume:
        if args.recipe:
            raise ConfigError("--resume continues a run with its own config; drop --recipe")
        result = train(overrides, resume=args.resume)
    else:
        result = train(TrainConfig.from_yaml(args.recipe, overrides), started=process_started())
    if result.run_dir is not None and os.environ.get("RANK", "0") == "0":
        print(f"run saved in {result.run_dir}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from resnet.deploy.evaluate import evaluate

    result = evaluate(
        args.checkpoint,
        dataset=args.dataset,
        split=args.split,
        data_dir=args.data_dir,
        tta_flip=args.tta,
        tta_shift=args.tta_shift,
        device=args.device,
        batch_size=args.batch_size,
        out_dir=args.out_dir,
        dtype=args.dtype,
        present_classes_only=args.present_classes_only,
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    precision = f" ({args.dtype})" if args.dtype else ""
    if args.present_classes_only:
        precision += f" among its {result['classes_ranked']} classes"
    print(
        f"{result['dataset']} {result['split']}{precision}: top-1 {result['top1']:.4f}  "
        f"top-5 {result['top5']:.4f}  loss {result['loss']:.4f}  ({result['num_samples']} images)"
    )
    scored = {k: v for k, v in result["per_class_accuracy"].items() if v is not None}
    width = max(len(name) for name in scored) if scored else 0
    for name, accuracy in scored.items():
        print(f"  {name:<{width}}  {accuracy:.4f}")
    absent = [name for name, v in result["per_class_accuracy"].items() if v is None]
    if absent:  # an ImageNet classifier on a 10-class folder: 990 of them
        shown = ", ".join(absent[:5]) + (", ..." if len(absent) > 5 else "")
        print(f"  no images of {len(absent)} class(es): {shown}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from resnet.deploy.predict import predict

    results = predict(
        args.checkpoint,
        args.inputs,
        topk=args.topk,
        device=args.device,
        tta_flip=args.tta,
        tta_shift=args.tta_shift,
    )
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for row in results:
            if "error" in row:
                continue
            ranked = ", ".join(f"{r['label']} {r['prob']:.3f}" for r in row["topk"])
            print(f"{row['path']}: {ranked}")
    failed = [row for row in results if "error" in row]
    for row in failed:  # one line per bad input, naming it; the good ones were printed above
        print(f"resnet: error: {row['error']}", file=sys.stderr)
    return 2 if failed else 0
