"""``resnet explain`` (Grad-CAM overlays) and ``resnet export`` (ONNX / TorchScript / pt2).

resnet explain --checkpoint runs/resnet20-fashion-mnist shirt.png --out explain/
resnet export --checkpoint runs/resnet20-fashion-mnist --format onnx --out model.onnx
"""

from __future__ import annotations

import argparse
import json

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    explain = subparsers.add_parser(
        "explain", help="Grad-CAM heatmaps over images (what the prediction looked at)"
    )
    explain.add_argument("--checkpoint", required=True, help="run dir, .safetensors or .json")
    explain.add_argument("inputs", nargs="+", metavar="IMAGE", help="image files (.npy volumes)")
    explain.add_argument(
        "--class-idx", type=int, default=None, help="class to explain (default: the predicted)"
    )
    explain.add_argument(
        "--target-layer", default=None, help="module name, e.g. layer4 (default: last stage)"
    )
    explain.add_argument("--out", default="explain", help="directory for the PNG overlays")
    explain.add_argument("--alpha", type=float, default=0.5, help="heatmap opacity, 0..1")
    explain.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    explain.add_argument("--json", action="store_true", help="print machine-readable JSON")
    explain.set_defaults(func=_explain)

    export = subparsers.add_parser(
        "export", help="export a checkpoint to ONNX, TorchScript or pt2, checked against PyTorch"
    )
    export.add_argument("--checkpoint", required=True, help="run dir, .safetensors or .json")
    export.add_argument("--format", required=True, choices=("onnx", "torchscript", "pt2"))
    export.add_argument("--out", default=None, help="output file (default: beside the checkpoint)")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset version")
    export.add_argument(
        "--atol", type=float, default=1e-4, help="largest allowed |exported - PyTorch|"
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

    report = export_model(args.checkpoint, args.format, args.out, atol=args.atol, opset=args.opset)
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
        f"{report['max_abs_diff']:.3g} (limit {report['atol']:g})"
    )
    return 0
