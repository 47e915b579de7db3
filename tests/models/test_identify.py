"""``inspect_weights`` / ``resnet inspect``: which models of the zoo a file loads into, and with
which options, found by trying it on every model (on the meta device)."""

import json

import pytest
import torch
import torchvision
from parity_helpers import timm_reference

from resnet.cli import main
from resnet.models.identify import inspect_weights


@pytest.fixture(scope="module")
def torchvision_resnet18(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "resnet18-f37072fd.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def test_a_torchvision_file_loads_into_its_own_net_only(torchvision_resnet18):
    report = inspect_weights(torchvision_resnet18)  # every model of the zoo is tried
    assert report.fits == {"resnet18": {}}
    assert (report.classes, report.tensors, report.kind) == (1000, 122, "")
    assert report.values == sum(
        t.numel()
        for t in torchvision.models.resnet18().state_dict().values()
        if t.is_floating_point()
    )


def test_the_options_a_layout_requires_are_named():
    legacy = timm_reference("legacy_seresnet18").state_dict()  # SENet's: a ReLU before SE
    report = inspect_weights(legacy, "*seresnet18*")
    assert report.fits == {"legacy_seresnet18": {}}  # built so by default: nothing to add
    assert "SENet's own nets" in report.kind
    v1 = torchvision.models.resnet50().state_dict()
    from resnet.models.layouts import Assumption

    known = [Assumption("stride_in_1x1", True, "a checkpoint of resnet50 (stride_in_1x1=True)")]
    report = inspect_weights(v1, "resnet5*", known)
    assert report.fits == {"resnet50": {"stride_in_1x1": True}}
    assert report.command_options("resnet50") == '--set "model_kwargs={stride_in_1x1: true}"'


def test_a_backbone_fits_every_head_and_a_stranger_fits_nothing(tmp_path):
    state = torchvision.models.resnet34().state_dict()
    backbone = {k: v for k, v in state.items() if not k.startswith("fc.")}
    report = inspect_weights(backbone, "resnet3*")
    assert report.classes is None and report.fits == {"resnet34": {}}
    state["layer5.weight"] = torch.zeros(1)
    assert inspect_weights(state, "resnet3*").fits == {}


def test_the_command_prints_what_to_run(torchvision_resnet18, capsys):
    assert main(["inspect", str(torchvision_resnet18), "--models", "resnet1*"]) == 0
    out = capsys.readouterr().out
    assert "122 tensors, 11.699 M values, a 1000-class classifier" in out
    assert f"resnet train --model resnet18 --pretrained {torchvision_resnet18}" in out
    assert main(["inspect", str(torchvision_resnet18), "--models", "resnet1*", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fits"] == {"resnet18": {}}
    assert main(["inspect", str(torchvision_resnet18.parent / "missing.pth")]) == 2
    assert "weight file not found" in capsys.readouterr().err


def test_a_grey_net_is_found_built_for_its_channels(tmp_path, capsys):
    """A Fashion-MNIST run's weights (a 1-channel stem) "loaded into no model": every model
    was tried with three input channels."""
    from resnet import create_model

    torch.manual_seed(0)
    path = tmp_path / "grey.pth"
    torch.save(create_model("resnet20", num_classes=10, in_chans=1).state_dict(), path)
    report = inspect_weights(path, "*20")
    assert report.fits == {"plain20": {"in_chans": 1}, "resnet20": {"in_chans": 1}}
    assert main(["inspect", str(path), "--models", "resnet2*"]) == 0
    out = capsys.readouterr().out
    assert "loads into: resnet20\n  its stem takes 1-channel images" in out
    assert out.rstrip().endswith(f"resnet train --model resnet20 --pretrained {path}")  # no --set


def test_a_run_folder_or_its_json_stands_for_its_weights(torchvision_resnet18, tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(["import", str(torchvision_resnet18), "--model", "resnet18", "--out", str(run)]) == 0
    )
    capsys.readouterr()
    for given in (run, run / "best.json"):
        assert main(["inspect", str(given), "--models", "resnet1*"]) == 0
        out = capsys.readouterr().out
        assert "a checkpoint of resnet18" in out and "loads into: resnet18" in out


def test_the_model_a_layout_names_comes_first(tmp_path):
    """timm's resnetaa50d fits resnet50d built anti-aliased, and, key for key, CLIP's trunk
    (its parameter-free stem pool differs); its config.json names resnetaa50d, listed first."""
    import timm
    from timm.models._hub import save_for_hf

    save_for_hf(timm.create_model("resnetaa50d"), str(tmp_path / "hub"), safe_serialization=True)
    report = inspect_weights(tmp_path / "hub", "resnet*50*")
    assert list(report.fits)[0] == "resnetaa50d" and report.fits["resnetaa50d"] == {}
    assert report.fits["resnet50d"] == {"anti_alias": "avg"}
    assert "resnet50" not in report.fits  # a plain stem: shapes differ
