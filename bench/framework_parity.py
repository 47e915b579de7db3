"""Weight files written by other frameworks themselves, loaded here: the README's "once" figures.

Step 1 runs inside the other framework's environment (it needs MXNet, GluonCV or PaddlePaddle,
which this package never imports) and writes, for each net, its weight file(s) and its output
on a fixed input; step 2 runs here and loads each file into the model of the zoo that takes it:

    python -m venv /tmp/mx && /tmp/mx/bin/pip install mxnet "numpy<1.24" "onnx<1.15" gluoncv
    /tmp/mx/bin/python bench/framework_parity.py write --framework mxnet --out /tmp/parity
    /tmp/mx/bin/python bench/framework_parity.py write --framework gluoncv --out /tmp/parity
    python -m venv /tmp/pd && /tmp/pd/bin/pip install paddlepaddle paddleclas
    /tmp/pd/bin/python bench/framework_parity.py write --framework paddle --out /tmp/parity
    python bench/framework_parity.py compare /tmp/parity

Weights are random (BatchNorm statistics as a trained net's), 10 classes, input 2x3x64x64.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

# file stem -> (our model, its options)
NETS = {
    "mxnet": {"resnet18_v1": ("resnet18", {}),
              "resnet50_v1": ("resnet50", {"stride_in_1x1": True}),
              "resnet18_v2": ("gluon_resnet18_v2", {}), "resnet50_v2": ("gluon_resnet50_v2", {})},
    "gluoncv": {"resnet50_v1b": ("resnet50", {}), "resnet50_v1c": ("resnet50c", {}),
                "resnet50_v1d": ("resnet50d", {}), "resnet50_v1s": ("resnet50s", {}),
                "resnet18_v1b": ("resnet18", {})},
    "paddle": {"ResNet50": ("resnet50", {}), "ResNet50_vd": ("resnet50d", {}),
               "ResNet101_vd": ("resnet101d", {}),
               "ResNet18": ("resnet18", {"project_first_shortcut": True}),
               "ResNet34_vd": ("resnet34d", {"project_first_shortcut": True})},
}  # fmt: skip


def _statistics(rng, name: str, shape) -> np.ndarray | None:
    """Trained-looking values for a BatchNorm's (and a bias's) tensors, by name; None: keep."""
    if name.endswith(("running_mean", "beta", "bias", "._mean", "bn.bias")):
        return rng.uniform(-0.2, 0.2, shape).astype(np.float32)
    if name.endswith(("running_var", "gamma", "._variance", "bn.weight")):
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    return None


def write_mxnet(out: Path, x: np.ndarray, gluoncv: bool) -> dict:
    import mxnet as mx

    if gluoncv:
        from gluoncv.model_zoo import get_model
    else:
        from mxnet.gluon.model_zoo.vision import get_model
    rng, written = np.random.default_rng(0), {}
    for stem in NETS["gluoncv" if gluoncv else "mxnet"]:
        net = get_model(stem, classes=10)
        net.initialize(mx.init.Xavier())
        net(mx.nd.array(x))
        # v2's input BatchNorm keeps its fixed scale 1 and shift 0 (scale=False, center=False).
        fixed = set(net.features[0].collect_params()) if stem.endswith("_v2") else set()
        for name, param in net.collect_params().items():
            if name in fixed and name.endswith(("gamma", "beta")):
                continue
            value = _statistics(rng, name, param.shape)
            if value is not None:
                param.set_data(mx.nd.array(value))
        np.save(out / f"{stem}.out.npy", net(mx.nd.array(x)).asnumpy())
        files = [f"{stem}.params"]
        net.save_parameters(str(out / files[0]))
        if not gluoncv:  # the other namings, and MXNet's own ONNX export
            net.collect_params().save(str(out / f"{stem}.prefixed.params"))
            net.collect_params().save(str(out / f"{stem}.stripped.params"), net.prefix)
            net.hybridize()
            net(mx.nd.array(x))
            net.export(str(out / stem))
            symbol, params = out / f"{stem}-symbol.json", out / f"{stem}-0000.params"
            mx.onnx.export_model(str(symbol), str(params), [(1, 3, 224, 224)], np.float32,
                                 str(out / f"{stem}.onnx"))  # fmt: skip
            files += [f"{stem}.prefixed.params", f"{stem}.stripped.params", f"{stem}-0000.params"]
            files.append(f"{stem}.onnx")
        written[stem] = files
    return written


def write_paddle(out: Path, x: np.ndarray) -> dict:
    import paddle
    from paddleclas.ppcls.arch.backbone.legendary_models import resnet

    rng, written = np.random.default_rng(0), {}
    for stem in NETS["paddle"]:
        net = getattr(resnet, stem)(class_num=10)
        for name, tensor in net.state_dict().items():
            value = _statistics(rng, name, tensor.shape) if ".bn." in name else None
            if value is not None:
                tensor.set_value(value)
        net.eval()
        np.save(out / f"{stem}.out.npy", net(paddle.to_tensor(x)).numpy())
        paddle.save(net.state_dict(), str(out / f"{stem}_pretrained.pdparams"))
        written[stem] = [f"{stem}_pretrained.pdparams"]
    return written


def compare(out: Path) -> None:
    import torch

    from resnet import create_model, load_weights

    torch.set_num_threads(1)
    x = torch.from_numpy(np.load(out / "input.npy"))
    for framework in NETS:
        manifest = out / f"{framework}.json"
        if not manifest.is_file():
            print(f"{framework:8} not written (step 1 with --framework {framework})")
            continue
        for stem, files in json.loads(manifest.read_text()).items():
            model, options = NETS[framework][stem]
            reference = np.load(out / f"{stem}.out.npy")
            for name in files:
                net = create_model(model, num_classes=10, **options)
                load_weights(net, out / name)
                with torch.no_grad():
                    ours = net.eval()(x).numpy()
                error = np.abs(ours - reference).max() / np.abs(reference).max()
                print(f"{framework:8} {name:36} -> {model:17} relative max error {error:.2e}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)
    write = steps.add_parser("write", help="in the framework's environment: files and outputs")
    write.add_argument("--framework", required=True, choices=("mxnet", "gluoncv", "paddle"))
    write.add_argument("--out", required=True, type=Path)
    check = steps.add_parser("compare", help="here: load each file and compare the outputs")
    check.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.step == "compare":
        compare(args.out)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(0).normal(0, 1, (2, 3, 64, 64)).astype(np.float32)
    np.save(args.out / "input.npy", x)
    if args.framework == "paddle":
        written = write_paddle(args.out, x)
    else:
        written = write_mxnet(args.out, x, gluoncv=args.framework == "gluoncv")
    (args.out / f"{args.framework}.json").write_text(json.dumps(written, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
