"""``resnet detect train|eval|predict``: a Faster R-CNN on our FPN backbone, on Fashion-MNIST
canvases or on photos annotated in COCO's format; torchvision's detector files run, score and
fine-tune too."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from resnet.cli.arguments import count, real
from resnet.cli.train import thread_count

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    detect = subparsers.add_parser(
        "detect", help="train, evaluate and run a Faster R-CNN (canvases, or your annotated photos)"
    )
    actions = detect.add_subparsers(dest="detect_command", metavar="ACTION")
    detect.set_defaults(func=lambda _args: _usage(detect))

    train = actions.add_parser(
        "train", help="train a detector on freshly generated canvases or on annotated photos"
    )
    # Defaults are None here (train_detector's own apply), so that --resume can tell a flag the
    # user gave (to be applied or refused) from one left at its default.
    train.add_argument("--model", help="4-stage backbone (default resnet18)")
    train.add_argument("--epochs", type=count(1), help="passes, each on fresh canvases (default 3)")
    train.add_argument("--train-images", type=count(1), help="canvases per epoch (default 1000)")
    train.add_argument("--batch-size", type=count(1), help="default 8")
    train.add_argument("--lr", type=real(0, above=True), help="peak SGD lr (default 0.02)")
    train.add_argument(
        "--canvas-size", type=count(32, 4096),
        help="canvas side in pixels (default 64); photos' shorter side (default 512)",
    )  # fmt: skip
    train.add_argument(
        "--weights",
        help="weight file for the backbone network; with --annotations also a torchvision "
        "Faster R-CNN file to fine-tune (its classifier made new for the file's categories)",
    )
    train.add_argument(
        "--annotations", metavar="JSON",
        help="photos annotated in COCO's format (instances_train.json) instead of canvases",
    )  # fmt: skip
    train.add_argument(
        "--image-dir", metavar="DIR", help="their images (default: COCO's layout, as eval's)"
    )
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

    evaluate = actions.add_parser(
        "eval", help="mAP@0.5 and mAP@[.5:.95] on held-out canvases or COCO-annotated photos"
    )
    evaluate.add_argument(
        "checkpoint", help="run folder written by `resnet detect train`, or a torchvision file"
    )
    evaluate.add_argument(
        "--images", type=count(1), default=None,
        help="held-out canvases (default 500), or the first N annotated photos (default all)",
    )  # fmt: skip
    evaluate.add_argument(
        "--annotations", metavar="JSON",
        help="photos annotated in COCO's format (instances_val2017.json) instead of canvases",
    )  # fmt: skip
    evaluate.add_argument(
        "--image-dir", metavar="DIR",
        help="their images (default: COCO's layout, annotations/instances_X.json -> X/)",
    )  # fmt: skip
    evaluate.add_argument("--seed", type=count(0), default=None, help="canvas seed (default fixed)")
    evaluate.add_argument("--json", action="store_true", help="print machine-readable JSON")
    _add_common(evaluate)
    evaluate.set_defaults(func=_eval)

    predict = actions.add_parser("predict", help="draw predicted boxes on images")
    predict.add_argument(
        "checkpoint",
        help="run folder written by `resnet detect train`, or a torchvision Faster R-CNN file "
        "(fasterrcnn_resnet50_fpn_coco-258fb6c6.pth)",
    )
    predict.add_argument("images", nargs="*", help="PNG/JPEG files (default: new canvases)")
    predict.add_argument("--out", default=None, help="folder for the PNGs (default CKPT/predict)")
    predict.add_argument(
        "--canvases", type=count(1), default=4, help="canvases when no images given"
    )
    predict.add_argument("--seed", type=count(0), default=2024)
    predict.add_argument("--score-threshold", type=real(0, 1), default=0.5)
    predict.add_argument(
        "--scale",
        type=count(1, 16),
        default=None,
        help="enlarge images before drawing (default 3 up to 256 px a side, else 1)",
    )
    predict.add_argument("--json", action="store_true", help="print machine-readable JSON")
    _add_common(predict)
    predict.set_defaults(func=_predict)

    canvases = actions.add_parser(
        "canvases", help="write canvases of Fashion-MNIST items in COCO's layout, as photos"
    )
    canvases.add_argument("--out", required=True, help="the dataset's root folder")
    canvases.add_argument("--split", default="train", help="train, val, ... (default train)")
    canvases.add_argument("--images", type=count(1), default=200, help="how many (default 200)")
    canvases.add_argument("--canvas-size", type=count(32, 4096), default=128, help="default 128")
    canvases.add_argument("--seed", type=count(0), default=0)
    _add_common(canvases)
    canvases.set_defaults(func=_canvases)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--data-dir", default=None, help="folder holding Fashion-MNIST")


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


# The options `resnet detect train` passes on; their defaults are train_detector's own.
_TRAIN_OPTIONS = ("model", "epochs", "train_images", "batch_size", "lr", "canvas_size", "seed",
                  "weights", "trainable_layers", "max_steps", "annotations",
                  "image_dir")  # fmt: skip


def _train(args: argparse.Namespace) -> int:
    import inspect

    from resnet.detection import train_detector
    from resnet.detection.train import saved_settings

    given = {key: getattr(args, key) for key in _TRAIN_OPTIONS if getattr(args, key) is not None}
    # A resumed run starts from its own settings; a flag given that changes its data or network
    # is refused by train_detector (check_same_run), epochs and lr apply.
    if args.resume is not None:
        saved = saved_settings(args.resume)
        start = {key: saved[key] for key in _TRAIN_OPTIONS if key in saved}
    else:
        parameters = inspect.signature(train_detector).parameters
        start = {key: parameters[key].default for key in _TRAIN_OPTIONS}
    summary = train_detector(**{**start, **given}, out=args.out, device=args.device,
                             resume=args.resume, data_dir=args.data_dir,
                             threads=args.threads)  # fmt: skip
    print(f"trained {summary.steps} steps in {summary.seconds:.0f}s; saved {summary.out_dir}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from resnet.detection import evaluate_detector
    from resnet.detection.evaluate import EVAL_SEED

    if args.annotations is not None:
        return _eval_coco(args)
    result = evaluate_detector(
        args.checkpoint,
        num_images=500 if args.images is None else args.images,
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


def _eval_coco(args: argparse.Namespace) -> int:
    import sys

    from resnet.detection.coco import coco_image_dir, evaluate_on_coco

    annotations = Path(args.annotations)
    result = evaluate_on_coco(
        args.checkpoint,
        annotations,
        args.image_dir or coco_image_dir(annotations),
        max_images=args.images,
        device=args.device,
        log=lambda line: print(line, file=sys.stderr),
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['images']} photos of {annotations.name}, {result['objects']} objects, "
          f"{result['seconds']}s")  # fmt: skip
    for key, title in (("map", "mAP@[.5:.95]"), ("map_50", "mAP@0.5"), ("map_75", "mAP@0.75"),
                       ("map_small", "mAP small"), ("map_medium", "mAP medium"),
                       ("map_large", "mAP large"), ("mar_100", "mAR@100")):  # fmt: skip
        value = result[key]  # COCO's -1: no object of that size to score
        print(f"{title:<13} " + (f"{value:.4f}" if value >= 0 else "n/a (no objects)"))
    return 0


def _canvases(args: argparse.Namespace) -> int:
    """Items of Fashion-MNIST's train split for a split named train*, of its test split for any
    other, so that scoring never sees an item training saw."""
    from resnet.detection import fashion_mnist_canvases
    from resnet.detection.coco import write_coco
    from resnet.detection.detector import default_item_sizes

    items = "train" if args.split.startswith("train") else "test"
    made = fashion_mnist_canvases(
        items, args.images, seed=args.seed, data_dir=args.data_dir, channels=3,
        canvas_size=args.canvas_size, item_sizes=default_item_sizes(args.canvas_size),
    )  # fmt: skip
    written = write_coco(made, args.out, args.split)
    print(
        f"{written}: {len(made)} canvases of Fashion-MNIST {items} items in {args.out}/{args.split}"
    )
    return 0


def _predict_folder(checkpoint: Path) -> Path:
    """CKPT/predict for a run folder; runs/detect-predict for a file, never beside it (a
    downloaded weight file may sit in a cache or a read-only folder)."""
    return checkpoint / "predict" if checkpoint.is_dir() else Path("runs") / "detect-predict"


def _predict(args: argparse.Namespace) -> int:
    from resnet.detection import predict_detections

    records = predict_detections(
        args.checkpoint,
        args.images,
        out_dir=args.out or _predict_folder(Path(args.checkpoint)),
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
