"""torchvision's video ResNets (``torchvision.models.video``: R3D-18, MC3-18, R(2+1)D-18, the
Kinetics-400 files' nets) are ``r3d_18``, ``mc3_18`` and ``r2plus1d_18``: each state_dict loads
through ``load_weights`` and gives torchvision's outputs, with torchvision's parameter counts and
GFLOPs; a file loaded into one of its siblings is refused naming the model it belongs to."""

import pytest
import torch
import torchvision
from parity_helpers import randomise_norms

from resnet import create_model, list_models, load_weights
from resnet.errors import ConfigError, WeightsError
from resnet.models import model_entry
from resnet.models.identify import inspect_weights
from resnet.models.profile import count_gflops

# torchvision's table: parameters and GFLOPS for a 16x112x112 clip.
VIDEO_NETS = {
    "r3d_18": ("r3d_18-b3b3357e.pth", 33_371_472, 40.697),
    "mc3_18": ("mc3_18-a90a0ba3.pth", 11_695_440, 43.343),
    "r2plus1d_18": ("r2plus1d_18-91a641e6.pth", 31_505_325, 40.519),
}


def _trained(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    net = getattr(torchvision.models.video, name)().eval()
    randomise_norms(net)  # statistics as a trained net's, so a wrong BN shows
    return net


@pytest.mark.parametrize("name", list(VIDEO_NETS))
def test_each_gives_torchvisions_outputs_parameters_and_gflops(name, tmp_path):
    filename, parameters, gflops = VIDEO_NETS[name]
    reference = _trained(name)
    torch.save(reference.state_dict(), tmp_path / filename)
    ours = create_model(name)
    assert load_weights(ours, tmp_path / filename).describe().endswith("fc included")
    clip = torch.randn(2, 3, 8, 32, 32)  # (B, C, T, H, W)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(clip), reference(clip), rtol=0, atol=1e-5)
    assert sum(p.numel() for p in ours.parameters()) == parameters
    assert model_entry(name).input_spatial(3) == (16, 112, 112)
    assert count_gflops(ours, (3, 16, 112, 112)) == pytest.approx(gflops, abs=0.01)
    assert list(inspect_weights(tmp_path / filename, "*_18").fits) == [name]


def test_mc3_keeps_the_clips_frames_and_r3d_halves_them():
    clip = torch.zeros(1, 3, 16, 32, 32)
    with torch.no_grad():
        assert create_model("mc3_18").forward_features(clip).shape == (1, 512, 16, 2, 2)
        assert create_model("r3d_18").forward_features(clip).shape == (1, 512, 2, 2, 2)


@pytest.mark.parametrize(
    ("owner", "into"), [(a, b) for a in VIDEO_NETS for b in (*VIDEO_NETS, "resnet18_3d") if a != b]
)
def test_a_file_loaded_into_a_sibling_is_refused_naming_its_model(owner, into):
    with torch.device("meta"):
        shapes = getattr(torchvision.models.video, owner)().state_dict()
        model = create_model(into)
    state = {key: torch.zeros(value.shape, dtype=value.dtype) for key, value in shapes.items()}
    with pytest.raises(WeightsError, match=f"load it into {owner}\\).*would compute another"):
        load_weights(model, state)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"convs": ("3d",) * 4}, "five of 3d, 2d, 2\\+1d"),
        ({"convs": ("3d", "3d", "3x", "2d", "2d")}, "five of"),
        ({"convs": ("2d",) * 5}, "stem must see time"),
        ({"spatial_dims": 2}, "spatial_dims must be 3"),
    ],
)
def test_bad_options_are_refused_in_one_line(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        create_model("r3d_18", **kwargs)


def test_the_three_are_the_video_family():
    assert sorted(list_models("*_18")) == sorted(VIDEO_NETS)
