"""torchvision's ResNets converted for detectron2 (``convert-torchvision-to-d2.py``: the
``R-50.pkl`` of Mask2Former and MaskFormer; MoCo's converter renames the same way) load into
ours and compute what torchvision's net computes; a checkpoint detectron2 trained is refused."""

import pickle

import pytest
import torch
import torchvision
from parity_helpers import randomise_norms

from resnet import create_model, load_weights
from resnet.errors import WeightsError


def _converted(state: dict, author: str = "torchvision") -> dict:
    """The pickle's content, renamed as detectron2's tools/convert-torchvision-to-d2.py does:
    one string replacement after another over torchvision's names."""
    model = {}
    for key, value in state.items():
        if "layer" not in key:
            key = "stem." + key
        for t in (1, 2, 3, 4):
            key = key.replace(f"layer{t}", f"res{t + 1}")
        for t in (1, 2, 3):
            key = key.replace(f"bn{t}", f"conv{t}.norm")
        key = key.replace("downsample.0", "shortcut").replace("downsample.1", "shortcut.norm")
        model[key] = value.numpy()
    return {"model": model, "__author__": author, "matching_heuristics": True}


def _trained(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    net = getattr(torchvision.models, name)(num_classes=10).eval()
    randomise_norms(net)  # statistics as a trained net's, so a wrong BN shows
    return net


@pytest.mark.parametrize("name", ["resnet50", "resnet18"])
def test_a_converted_torchvision_net_computes_torchvisions_outputs(name, tmp_path):
    reference = _trained(name)
    path = tmp_path / "R-50.pkl"
    path.write_bytes(pickle.dumps(_converted(reference.state_dict())))
    net = create_model(name, num_classes=10)
    assert "fc included" in load_weights(net, path).describe()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), reference(x), rtol=0, atol=1e-6)
    # torchvision's stride (the 3x3): the paper's v1 would compute another net.
    with pytest.raises(WeightsError, match="stride_in_1x1=False and resnet50 has True"):
        load_weights(create_model("resnet50", num_classes=10, stride_in_1x1=True), path)


def test_what_is_not_a_converted_resnet_is_refused(tmp_path):
    state = _trained("resnet18").state_dict()
    moco = _converted(state, author="MOCO")
    moco["model"]["stem.fc.0.weight"] = moco["model"].pop("stem.fc.weight")  # an MLP head
    backbone = {f"backbone.bottom_up.{k}": v for k, v in _converted(state)["model"].items()}
    detector = {"model": backbone, "__author__": "Detectron2 Model Zoo"}
    cases = [
        (moco, r"tensors outside a ResNet in detectron2's names \(stem.fc.0.weight"),
        (detector, "a detector detectron2 trained .backbone.bottom_up.stem.conv1.weight.*R-50.pkl"),
    ]
    for index, (content, message) in enumerate(cases):
        path = tmp_path / f"{index}.pkl"
        path.write_bytes(pickle.dumps(content))
        with pytest.raises(WeightsError, match=message):
            load_weights(create_model("resnet18", num_classes=10), path)
    # detectron2 saves its own checkpoints as .pth too (model_final.pth): the same message.
    tensors = {key: torch.from_numpy(value) for key, value in backbone.items()}
    torch.save({"model": tensors, "iteration": 90000}, tmp_path / "model_final.pth")
    with pytest.raises(WeightsError, match="a detector detectron2 trained"):
        load_weights(create_model("resnet18", num_classes=10), tmp_path / "model_final.pth")
