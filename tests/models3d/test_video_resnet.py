"""torchvision's R3D-18 (``torchvision.models.video.r3d_18``, the Kinetics-400 file's net) is
``r3d_18``: its state_dict loads through ``load_weights`` and gives torchvision's outputs; its
video siblings that compute otherwise are refused by name."""

import pytest
import torch
import torchvision
from parity_helpers import randomise_norms

from resnet import create_model, load_weights
from resnet.errors import WeightsError
from resnet.models import model_entry
from resnet.models.identify import inspect_weights
from resnet.models.profile import count_gflops


def _trained(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    net = getattr(torchvision.models.video, name)().eval()
    randomise_norms(net)  # statistics as a trained net's, so a wrong BN shows
    return net


def test_r3d_18_gives_torchvisions_outputs_and_its_gflops(tmp_path):
    reference = _trained("r3d_18")
    torch.save(reference.state_dict(), tmp_path / "r3d_18-b3b3357e.pth")
    ours = create_model("r3d_18")
    assert load_weights(ours, tmp_path / "r3d_18-b3b3357e.pth").describe().endswith("fc included")
    clip = torch.randn(2, 3, 8, 32, 32)  # (B, C, T, H, W)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(clip), reference(clip), rtol=0, atol=1e-5)
    # torchvision's table: 40.7 GFLOPS for a 16x112x112 clip, the registry's default input.
    assert model_entry("r3d_18").input_spatial(3) == (16, 112, 112)
    assert count_gflops(ours, (3, 16, 112, 112)) == pytest.approx(40.70, abs=0.01)
    assert list(inspect_weights(tmp_path / "r3d_18-b3b3357e.pth", "r3d*").fits) == ["r3d_18"]


@pytest.mark.parametrize(
    ("name", "what"), [("mc3_18", "MC3-18"), ("r2plus1d_18", r"R\(2\+1\)D-18")]
)
def test_its_siblings_that_compute_otherwise_are_refused_by_name(name, what):
    with torch.device("meta"):
        state = getattr(torchvision.models.video, name)().state_dict()
        model = create_model("r3d_18")
    with pytest.raises(WeightsError, match=f"torchvision's {what}.*only R3D-18 is built here"):
        load_weights(model, state)
