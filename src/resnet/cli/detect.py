"""``resnet detect train|eval|predict``: a Faster R-CNN on our FPN backbone, on Fashion-MNIST
canvases."""

from __future__ import annotations

import argparse
import json

from resnet.cli.arguments import count, real
from resnet.cli.train import thread_count

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    detect = subparsers.add_parser(
        "detect", help="train, evaluate and run a Faster R-CNN on Fashion-MNIST canvases"
    )
    actions = detect.add_subparsers(dest="detect_command", metavar="ACTION")
    detect.set_defaults(func=lambda _args: _usage(detect))

    train = actions.add_parser("train", help="train a detector on freshly generated canvases")
    # Defaults are None here and _TRAIN_DEFAULTS below, so that --resume can tell a flag the
    # user gave (to be applied or refused) from one left at its default.
    train.add_argument("--model", help="4-stage backbone (default resnet18)")
    train.add_argument("--epochs", type=count(1), help="passes, each on fresh canvases (default 3)")
    train.add_argument("--train-images", type=count(1), help="canvases per epoch (default 1000)")
    train.add_argument("--batch-size", type=count(1), help="default 8")
    train.add_argument("--lr", type=real(0, above=True), help="peak SGD lr (default 0.02)")
    train.add_argument("--canvas-size", type=count(1), help="canvas side in pixels (default 64)")
    train.add_argument("--weights", help="weight file for the backbone network")
    train.add_argument(
        "--trainable-layers", type=count(0, 5), help="backbone stages to train, 0..5 (default 5)"
    )
    train.add_argument("--out", default=None, help="run folder (default runs/detect-MODEL[-N])")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last epoch")
    train.add_argument("--max-steps", type=count(1), help="stop after N steps")
    _add_common(train)
    train.add_argument("--seed", type=count(0), help="default 0")
    train.add_argument(
        "--threads", type=thread_count, help="CPU threads, or free: the CPUs idle at start"
    )
    train.set_defaults(func=_train)

    evaluate = actions.add_parser("eval", help="mAP@0.5 and mAP@[.5:.95] on held-out canvases")
    evaluate.add_argument("checkpoint", help="run folder written by `resnet detect train`")
    evaluate.add_argument("--images", type=count(1), default=500, help="held-out canvases")
    evaluate.add_argument("--seed", type=count(0), default=None, help="canvas seed (default fixed)")
    evaluate.add_argument("--json", action="store_true", help="print machine-readable JSON")
    _add_common(evaluate)
    evaluate.set_defaults(func=_eval)

    predict = actions.add_parser("predict", help="draw predicted boxes on images")
    predict.add_argument("checkpoint", help="run folder written by `resnet detect train`")
    predict.add_argument("images", nargs="*", help="PNG/JPEG files (default: new canvases)")
    predict.add_argument("--out", default=None, help="folder for the PNGs (default CKPT/predict)")
    predict.add_argument(
        "--canvases", type=count(1), default=4, help="canvases when no images given"
    )
    predict.add_argument("--seed", type=count(0), default=2024)
    predict.add_argument("--score-threshold", type=real(0, 1), default=0.5)
    predict.add_argument(
        "--scale", type=count(1, 16), default=3, help="enlarge images before drawing"
    )
    predict.add_argument("--json", action="store_true", help="print machine-readable JSON")
    _add_common(predict)
    predict.set_defaults(func=_predict)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--data-dir", default=None, help="folder holding Fashion-MNIST")


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


_TRAIN_DEFAULTS = {
    "model": "resnet18", "epochs": 3, "train_images": 1000, "batch_size": 8, "lr": 0.02,
    "canvas_size": 64, "seed": 0, "weights": None, "trainable_layers": 5, "max_steps": None,
}  # fmt: skip


def _train(args: argparse.Namespace) -> int:
    from resnet.detection import train_detector

    given = {key: getattr(args, key) for key in _TRAIN_DEFAULTS if getattr(args, key) is not None}
    # A resumed run starts from its own settings; a flag given that changes its data or network
    # is refused by train_detector (check_same_run), epochs and lr apply.
    start = _saved_options(args.resume) if args.resume is not None else _TRAIN_DEFAULTS
    options = {**start, **given}
    summary = train_detector(**options, out=args.out, device=args.device, resume=args.resume,
                             data_dir=args.data_dir, threads=args.threads)  # fmt: skip
    print(f"trained {summary.steps} steps in {summary.seconds:.0f}s; saved {summary.out_dir}")
    return 0


def _saved_options(run_dir: str) -> dict:
    """The options a detection run was started with (its config.yaml)."""
    from pathlib import Path

    import yaml

    from resnet.errors import ConfigError
    from resnet.io import load_yaml

    path = Path(run_dir) / "config.yaml"
    try:
        saved = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read the run's settings ({error}); pass a run "
                          "folder written by `resnet detect train`") from None  # fmt: skip
    if not isinstance(saved, dict) or any(key not in saved for key in _TRAIN_DEFAULTS):
        raise ConfigError(f"{path}: not the settings of a detection run; pass its run folder")
    return {key: saved[key] for key in _TRAIN_DEFAULTS}


def _eval(args: argparse.Namespace) -> int:
    from resnet.detection import evaluate_detector
    from resnet.detection.evaluate import EVAL_SEED

    result = evaluate_detector(
        args.checkpoint,
        num_images=args.images,
        seed=EVAL_SEED if args.seed is None else args.seed,
        device=args.device,
        data_dir=args.data_dir,
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"{result['images']} held-out canvases, {result['objects']} objects "
        f"(Fashion-MNIST test items, seed {result['seed']}), {result['seconds']}s"
    )
    print(f"mAP@0.5       {result['map_50']:.4f}")
    print(f"mAP@[.5:.95]  {result['map']:.4f}")
    print(f"mAP@0.75      {result['map_75']:.4f}")
    print(f"mAR@100       {result['mar_100']:.4f}")
    for name, ap in result.get("per_class", {}).items():
        print(f"  AP {name:<14} " + ("n/a (no objects)" if ap is None else f"{ap:.4f}"))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    from resnet.detection import predict_detections

    records = predict_detections(
        args.checkpoint,
        args.images,
        out_dir=args.out or Path(args.checkpoint) / "predict",
        num_canvases=args.canvases,
        seed=args.seed,
        score_threshold=args.score_threshold,
        scale=args.scale,
        device=args.device,
        data_dir=args.data_dir,
    )
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    for record in records:
        found = ", ".join(f"{d['label']} {d['score']:.2f}" for d in record["detections"])
        print(f"{record['output']}: {found or 'nothing above the threshold'}")
    return 0
