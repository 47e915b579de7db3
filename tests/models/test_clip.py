"""CLIP's ResNets: OpenAI's code (as open_clip ships it) and timm's give our numbers from their
files, and the files that would compute another net are refused."""

import pytest
import torch
from open_clip.modified_resnet import ModifiedResNet  # a dev dependency: never skipped
from parity_helpers import randomise_norms, relative_difference, timm_reference
from torch.nn import functional as F

from resnet import create_model, load_weights
from resnet.errors import ConfigError, WeightsError
from resnet.models import Bottleneck, ResNet
from resnet.models.attention_pool import resample_positions
from resnet.models.clip import CLIP_VARIANTS

pytestmark = pytest.mark.usefixtures("one_thread")


def _openai_reference() -> torch.nn.Module:
    """OpenAI's RN50 image tower, random weights, randomised BN (open_clip keeps its code)."""
    torch.manual_seed(0)
    reference = ModifiedResNet([3, 4, 6, 3], output_dim=1024, heads=32, width=64).eval()
    randomise_norms(reference)
    return reference


def _openai_checkpoint(visual: torch.nn.Module) -> dict:
    """A whole CLIP state_dict as OpenAI's model holds it: the image tower under ``visual.``
    beside the text tower and the shared scalars."""
    state = {f"visual.{k}": v for k, v in visual.state_dict().items()}
    state["token_embedding.weight"] = torch.zeros(49408, 8)
    state["transformer.resblocks.0.attn.in_proj_weight"] = torch.zeros(24, 8)
    state["logit_scale"] = torch.tensor(4.6)
    return state


def test_openais_rn50_checkpoint_gives_openais_embedding():
    reference = _openai_reference()
    ours = create_model("resnet50_clip").eval()
    report = load_weights(ours, _openai_checkpoint(reference))
    assert not report.dropped_classifier and not report.backbone_only  # c_proj is our fc
    assert relative_difference(ours, reference, 224) < 1e-12


@pytest.mark.parametrize("name", ["resnet50_clip", "resnet50_clip_gap"])
def test_timms_clip_files_give_timms_outputs_at_any_size(name):
    """At 224 as trained; at 96 the attention pool's 7x7 positions are resized to 3x3 as
    timm resizes them (bicubic, anti-aliased; timm in float32, hence 1e-9 there)."""
    reference = timm_reference(name, num_classes=10)
    ours = create_model(name, num_classes=10).eval()
    load_weights(ours, reference.state_dict())
    assert relative_difference(ours, reference, 224) < 1e-12
    assert relative_difference(ours, reference, 96) < 1e-9


@pytest.mark.parametrize("grid", [7, 9, 12, 14])
def test_resized_positions_are_torchs_antialiased_bicubic_resize(grid):
    """The resize is a matrix (ONNX has no anti-aliased bicubic), equal to F.interpolate's."""
    torch.manual_seed(0)
    positions = torch.randn(1 + grid * grid, 5, dtype=torch.float64)
    for height, width in [(1, 1), (3, 2), (grid - 1, grid + 3), (2 * grid, grid)]:
        ours = resample_positions(positions, grid, height, width)
        grid_map = positions[1:].T.reshape(1, 5, grid, grid)
        expected = F.interpolate(
            grid_map, (height, width), mode="bicubic", antialias=True, align_corners=False
        )
        assert torch.equal(ours[0], positions[0])  # the mean token's position is kept
        torch.testing.assert_close(ours[1:].T.reshape(1, 5, height, width), expected)


@pytest.mark.parametrize(
    "name", [n for base in CLIP_VARIANTS for n in (base, base.replace("_clip", "_clip_gap"))]
)
def test_every_clip_net_has_timms_keys_and_shapes(name):
    import timm

    with torch.device("meta"):
        theirs = timm.create_model(name, num_classes=1000).state_dict()
        ours = create_model(name, num_classes=1000).state_dict()
    from resnet.models.clip_names import from_timm_clip_names

    renamed = from_timm_clip_names(theirs)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in renamed.items()}


def test_a_clip_trunk_is_refused_by_the_plain_net_it_fits():
    """timm's CLIP trunk fits resnet50d key for key (a deep stem, average-pool shortcuts), but
    its blocks subsample after the 3x3: loaded there it would compute another network."""
    state = timm_reference("resnet50_clip_gap").state_dict()
    with pytest.raises(WeightsError, match="CLIP ResNet.*anti_alias='avg' and resnet50d has None"):
        load_weights(create_model("resnet50d"), state)
    load_weights(create_model("resnet50_clip_gap"), state)


@pytest.mark.filterwarnings("ignore:`torch.jit.save` is deprecated")
def test_a_clip_vit_and_a_torchscript_archive_are_refused_with_what_to_do(tmp_path):
    vit = {
        "visual.conv1.weight": torch.zeros(768, 3, 32, 32),
        "visual.class_embedding": torch.zeros(768),
    }
    with pytest.raises(WeightsError, match="vision transformer .*use RN50"):
        load_weights(create_model("resnet50_clip"), vit)
    archive = tmp_path / "RN50.pt"  # OpenAI ships its CLIP models as TorchScript archives
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(archive))
    with pytest.raises(WeightsError, match=r"TorchScript archive .*torch\.jit\.load\("):
        load_weights(create_model("resnet50_clip"), archive)


def test_attention_pooling_needs_a_2d_map():
    with pytest.raises(ConfigError, match="pools 2D maps"):
        ResNet(Bottleneck, [1, 1, 1, 1], spatial_dims=3, global_pool="attention")


def test_positions_of_another_grid_say_which_grid_to_build():
    """RN50x4's pool learned 9x9 positions (288-pixel images): into a 7x7 pool, say so."""
    small = {"block": Bottleneck, "layers": [1, 1, 1, 1], "global_pool": "attention"}
    state = ResNet(**small, attention_grid=9).state_dict()
    model = ResNet(**small)
    with pytest.raises(WeightsError, match=r"9x9 map \(288-pixel images\).*attention_grid=9"):
        load_weights(model, state)
