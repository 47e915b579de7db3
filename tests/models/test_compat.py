"""Checkpoints written before a default changed rebuild the network they were saved from."""

import json

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from resnet.models import create_model
from resnet.models.compat import legacy_model_kwargs


def _bn(x, state, name):
    return F.batch_norm(
        x,
        state[f"{name}.running_mean"],
        state[f"{name}.running_var"],
        state[f"{name}.weight"],
        state[f"{name}.bias"],
        training=False,
    )


def _format1_resnet20(state, x):
    """ResNet-20 as checkpoint format 1 computed it: option A appended its zero channels."""
    out = F.relu(_bn(F.conv2d(x, state["conv1.weight"], padding=1), state, "bn1"))
    for stage in (1, 2, 3):
        for index in range(3):
            name = f"layer{stage}.{index}"
            stride = 2 if stage > 1 and index == 0 else 1
            y = F.conv2d(out, state[f"{name}.conv1.weight"], stride=stride, padding=1)
            y = F.relu(_bn(y, state, f"{name}.bn1"))
            y = _bn(F.conv2d(y, state[f"{name}.conv2.weight"], padding=1), state, f"{name}.bn2")
            shortcut = out
            if stride == 2:  # (B, C, H, W) -> (B, 2C, H/2, W/2), zeros after the old channels
                shortcut = F.pad(out[:, :, ::2, ::2], (0, 0, 0, 0, 0, out.shape[1]))
            out = F.relu(y + shortcut)
    return F.linear(out.mean((2, 3)), state["fc.weight"], state["fc.bias"])


def _format1_checkpoint(tmp_path):
    """``best.safetensors`` + ``best.json`` as engine/checkpoint.py wrote them in format 1."""
    torch.manual_seed(0)
    state = create_model("resnet20", num_classes=3).state_dict()
    for key, value in state.items():  # trained-looking BN statistics and affine maps
        if key.endswith(("running_var", "bn1.weight", "bn2.weight")):
            value.uniform_(0.5, 1.5)
        elif key.endswith(("running_mean", "bn1.bias", "bn2.bias")):
            value.uniform_(-0.2, 0.2)
    save_file(state, str(tmp_path / "best.safetensors"))
    info = {"format_version": 1, "model_name": "resnet20", "model_kwargs": {"num_classes": 3}}
    (tmp_path / "best.json").write_text(json.dumps({**info, "epoch": 1, "step": 1, "metrics": {}}))
    return state


def _rebuild(tmp_path):
    info = json.loads((tmp_path / "best.json").read_text())
    kwargs = legacy_model_kwargs(info["model_name"], info["model_kwargs"], info["format_version"])
    model = create_model(info["model_name"], **kwargs)
    model.load_state_dict(load_file(str(tmp_path / "best.safetensors")), strict=True)
    return model.eval()


def test_a_format1_checkpoint_gives_the_outputs_it_gave_before(tmp_path):
    state = _format1_checkpoint(tmp_path)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected = _format1_resnet20(state, x)
        rebuilt = _rebuild(tmp_path)(x)
        today = create_model("resnet20", num_classes=3)
        today.load_state_dict(state)
        with_new_default = today.eval()(x)
    assert expected.abs().max() > 0.1
    assert (rebuilt - expected).abs().max().item() < 1e-5
    # Without the fill-in the new default (zeros on both sides) would change the outputs.
    assert (with_new_default - expected).abs().max().item() > 1e-3


def test_new_models_record_the_options_whose_defaults_changed():
    assert create_model("resnet20").model_kwargs == {"shortcut_pad": "both"}
    assert create_model("resnet20", shortcut_pad="after").model_kwargs == {"shortcut_pad": "after"}
    assert create_model("resnet18_3d").model_kwargs == {"bias_downsample": True}
    assert create_model("preact_resnet18").model_kwargs == {"stem_out": "none"}
    assert create_model("wrn16_4").model_kwargs == {"stem_out": "none"}
    # Nothing to record where no changed option shapes the net, or for names born after.
    assert create_model("resnet50").model_kwargs == {}
    assert create_model("plain20").model_kwargs == {}
    assert create_model("resnet50d").model_kwargs == {}


def test_recorded_options_rebuild_the_same_network():
    for name in ("resnet20", "resnet18_3d", "preact_resnet18", "wrn16_4"):
        model = create_model(name)
        kwargs = legacy_model_kwargs(name, model.model_kwargs, 1)
        rebuilt = create_model(name, **kwargs)
        assert model.model_kwargs.items() <= rebuilt.model_kwargs.items()
        rebuilt.load_state_dict(model.state_dict(), strict=True)
        x = torch.randn(2, 3, *(16,) * model.spatial_dims)
        with torch.no_grad():
            torch.testing.assert_close(rebuilt.eval()(x), model.eval()(x), rtol=0, atol=0)


def test_format1_structures_of_the_changed_families():
    def keys(name):
        return set(create_model(name, **legacy_model_kwargs(name, {}, 1)).state_dict())

    assert "bn1.weight" in keys("preact_resnet18")  # BN-ReLU after the stem conv, as before
    assert "bn1.weight" not in set(create_model("preact_resnet18").state_dict())
    assert not any(k.endswith("downsample.0.bias") for k in keys("resnet18_3d"))
    assert "layer2.0.downsample.0.bias" in set(create_model("resnet18_3d").state_dict())
    wrn = create_model("wrn16_4", **legacy_model_kwargs("wrn16_4", {}, 1))
    assert isinstance(wrn.relu, torch.nn.ReLU) and isinstance(wrn.bn1, torch.nn.Identity)
    assert legacy_model_kwargs("resnet50d", {"num_classes": 3}, 1) == {"num_classes": 3}
