"""Anti-aliased ResNets (timm's resnetaa*, resnetblur*): timm's numbers, and the files that
would load silently into the plain nets refused by what timm's config.json names."""

import pytest
import torch
from parity_helpers import relative_difference, timm_reference, timm_state_on_meta

from resnet import create_model, load_weights
from resnet.errors import ConfigError, WeightsError
from resnet.models import BasicBlock, ResNet
from resnet.models.antialiased import ANTI_ALIASED_VARIANTS
from resnet.models.blur_pool import BlurPool

pytestmark = pytest.mark.usefixtures("one_thread")

# Same code as a compared net with more blocks or wider groups: keys and shapes only.
SHAPES_ONLY = ("resnetaa101d", "seresnextaa101d_32x8d", "seresnextaa201d_32x8d")


@pytest.mark.parametrize("name", [n for n in ANTI_ALIASED_VARIANTS if n not in SHAPES_ONLY])
def test_timm_weights_give_timms_outputs_at_even_and_odd_sizes(name):
    reference = timm_reference(name)
    ours = create_model(name).eval()
    load_weights(ours, reference.state_dict())
    for side in (64, 65):  # 65: the pools' floor and the blur's padding at an odd edge
        assert relative_difference(ours, reference, side) < 1e-12, side


@pytest.mark.parametrize("name", SHAPES_ONLY)
def test_the_deep_ones_have_timms_keys_and_shapes(name):
    with torch.device("meta"):
        ours = {k: v.shape for k, v in create_model(name).state_dict().items()}
    assert ours == {k: v.shape for k, v in timm_state_on_meta(name).items()}


def test_the_filter_is_what_makes_it_another_network():
    """resnetaa50's tensors fit resnet50 exactly and compute something else there: the
    difference the config.json check below exists for."""
    reference = timm_reference("resnetaa50")
    plain = create_model("resnet50").eval()
    load_weights(plain, reference.state_dict())
    assert relative_difference(plain, reference, 64) > 0.01


def test_blur_pool_is_the_binomial_filter_and_keeps_shifted_inputs_closer():
    blur = BlurPool(1)
    impulse = torch.zeros(1, 1, 5, 5)
    impulse[0, 0, 2, 2] = 16.0
    out = blur(impulse)  # the filter, sampled at every other pixel
    expected = torch.tensor([[0.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(out[0, 0], expected)
    # A one-pixel shift moves a strided sample's output by the whole signal; the blurred one less.
    x = torch.zeros(1, 1, 8, 8)
    x[..., 3] = 1.0
    shifted = torch.roll(x, 1, dims=-1)
    plain = (x[..., ::2, ::2] - shifted[..., ::2, ::2]).abs().sum()
    blurred = (blur(x) - blur(shifted)).abs().sum()
    assert blurred <= 0.5 * plain  # here 2 against 4


def _timm_hub_folder(tmp_path, name):
    """A folder as timm's ``save_for_hf`` writes it (the hub's layout): weights and config.json."""
    from timm.models._hub import save_for_hf

    folder = tmp_path / name
    save_for_hf(timm_reference(name), str(folder), safe_serialization=True)
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    return folder


def test_a_timm_hub_folder_loads_only_into_the_net_its_config_names(tmp_path):
    anti_aliased = _timm_hub_folder(tmp_path, "resnetaa50")
    with pytest.raises(WeightsError, match=r"timm's resnetaa50 .*anti_alias='avg' and resnet50"):
        load_weights(create_model("resnet50"), anti_aliased)
    assert load_weights(create_model("resnetaa50"), anti_aliased).loaded > 0
    plain = _timm_hub_folder(tmp_path, "resnet50")
    with pytest.raises(WeightsError, match=r"anti_alias=None and resnetaa50 has 'avg'"):
        load_weights(create_model("resnetaa50"), plain / "model.safetensors")
    assert load_weights(create_model("resnet50"), plain).loaded > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"anti_alias": "max"}, "anti_alias must be one of None, 'avg', 'blur', got 'max'"),
        ({"anti_alias": "avg", "stride_in_1x1": True}, "use one of them"),
    ],
)
def test_options_it_cannot_build_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        create_model("resnet50", **kwargs)


def test_it_is_refused_where_no_block_takes_it():
    with pytest.raises(ConfigError, match="not to PreActBottleneck"):
        create_model("preact_resnet50", anti_alias="avg")
    volumes = {"spatial_dims": 3, "num_classes": 2, "in_chans": 1}
    with pytest.raises(ConfigError, match="2D filter; a 3D net can use anti_alias='avg'"):
        ResNet(BasicBlock, [1, 1, 1, 1], anti_alias="blur", **volumes)
    volume = ResNet(BasicBlock, [1, 1, 1, 1], anti_alias="avg", stem_pool="avg", **volumes)
    assert volume.eval()(torch.randn(1, 1, 32, 32, 32)).shape == (1, 2)
