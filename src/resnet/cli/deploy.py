"""``resnet explain`` (Grad-CAM overlays) and ``resnet export`` (ONNX / TorchScript / pt2).

resnet explain --checkpoint runs/resnet20-fashion-mnist shirt.png --out explain/
resnet export --checkpoint runs/resnet20-fashion-mnist --format onnx --out model.onnx
resnet export --checkpoint runs/resnet20-fashion-mnist --format onnx --int8
"""

from __future__ import annotations

import argparse
import json

from resnet.cli.arguments import count, real

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    explain = subparsers.add_parser(
        "explain", help="Grad-CAM heatmaps over images (what the prediction looked at)"
    )
    explain.add_argument("--checkpoint", required=True, help="run dir, .safetensors or .json")
    explain.add_argument(
        "inputs", nargs="+", metavar="IMAGE", help="image files (.npy volumes), or folders of them"
    )
    explain.add_argument(
        "--class-idx",
        default=None,
        metavar="CLASS",
        help="class to explain, by name or number (default: the predicted)",
    )
    explain.add_argument(
        "--target-layer", default=None, help="module name, e.g. layer4 (default: last stage)"
    )
    explain.add_argument("--out", default="explain", help="directory for the PNG overlays")
    explain.add_argument("--alpha", type=real(0, 1), default=0.5, help="heatmap opacity, 0..1")
    explain.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    explain.add_argument("--json", action="store_true", help="print machine-readable JSON")
    explain.set_defaults(func=_explain)

    export = subparsers.add_parser(
        "export", help="export a checkpoint to ONNX, TorchScript or pt2, checked against PyTorch"
    )
    export.add_argument("--checkpoint", required=True, help="run dir, .safetensors or .json")
    export.add_argument("--format", required=True, choices=("onnx", "torchscript", "pt2"))
    export.add_argument("--out", default=None, help="output file (default: beside the checkpoint)")
    export.add_argument("--opset", type=count(1), default=17, help="ONNX opset version")
    export.add_argument(
        "--atol", type=real(0, above=True), default=1e-4, help="allowed |exported - torch|, plus"
    )
    export.add_argument(
        "--rtol", type=real(0), default=1e-5, help="... this times the largest |output|"
    )
    export.add_argument(
        "--int8",
        action="store_true",
        help="static int8 quantization (ONNX only), calibrated on real images and checked",
    )
    export.add_argument(
        "--calibration-data",
        default=None,
        metavar="NAME_OR_PATH",
        help="--int8: dataset whose train split calibrates (default: the checkpoint's own)",
    )
    export.add_argument(
        "--check-data",
        default=None,
        metavar="NAME_OR_PATH",
        help="--int8: dataset whose test split checks int8 vs fp32 (default: the checkpoint's)",
    )
    export.add_argument(
        "--calibration-samples",
        type=count(1),
        default=256,
        metavar="N",
        help="--int8: calibration images",
    )
    export.add_argument(
        "--check-samples",
        type=count(0),
        default=2000,
        metavar="N",
        help="--int8: check images (0: all)",
    )
    export.add_argument(
        "--min-agreement",
        type=real(0, 1),
        default=0.97,
        help="--int8: least fraction of check images with the same top-1 class as fp32",
    )
    export.add_argument("--json", action="store_true", help="print the report as JSON")
    export.set_defaults(func=_export)


def _explain(args: argparse.Namespace) -> int:
    from resnet.explain.gradcam import explain_images

    results = explain_images(
        args.checkpoint,
        args.inputs,
        out_dir=args.out,
        class_idx=args.class_idx,
        target_layer=args.target_layer,
        device=args.device,
        alpha=args.alpha,
    )
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for row in results:
        print(f"{row['path']}: {row['label']} ({row['prob']:.1%}) -> {row['out']}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from resnet.deploy.export import export_model
    from resnet.errors import ConfigError

    if args.int8:
        if args.format != "onnx":
            raise ConfigError(
                f"--int8 needs --format onnx (int8 models run in onnxruntime), got {args.format}"
            )
        return _export_int8(args)
    int8_only = ("calibration_data", "check_data")
    given = [f"--{name.replace('_', '-')}" for name in int8_only if getattr(args, name)]
    if given:
        raise ConfigError(f"{' and '.join(given)}: only used with --int8; add --int8 or drop it")

    report = export_model(
        args.checkpoint, args.format, args.out, atol=args.atol, rtol=args.rtol, opset=args.opset
    )
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    meta = report["metadata"]
    print(
        f"wrote {report['path']} ({report['bytes'] / 1e6:.2f} MB): {meta['model_name']}, "
        f"input {meta['input_shape']}, {len(meta['class_names'] or [])} classes"
    )
    print(
        f"checked with {report['checked_with']}: max |diff| vs PyTorch = "
        f"{report['max_abs_diff']:.3g} (limit {report['limit']:.3g})"
    )
    return 0


def _export_int8(args: argparse.Namespace) -> int:
    from resnet.deploy.quantize import quantize_int8

    report = quantize_int8(
        args.checkpoint,
        args.out,
        calibration=args.calibration_data,
        check=args.check_data,
        calibration_samples=args.calibration_samples,
        check_samples=args.check_samples,
        min_agreement=args.min_agreement,
        opset=args.opset,
    )
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    meta = report["metadata"]
    print(
        f"wrote {report['path']} ({report['bytes'] / 1e6:.2f} MB, fp32 "
        f"{report['fp32_bytes'] / 1e6:.2f} MB): {meta['model_name']} int8, calibrated on "
        f"{report['calibration']}"
    )
    line = (
        f"checked on {report['check_samples']} {report['check']} images: top-1 agreement with "
        f"PyTorch fp32 {report['top1_agreement']:.2%}"
    )
    if report["accuracy_fp32"] is not None:
        line += (
            f", accuracy fp32 {report['accuracy_fp32']:.2%} -> int8 {report['accuracy_int8']:.2%}"
        )
    print(line)
    return 0
