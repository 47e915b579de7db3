"""The small-map convolution kernel: same numbers as ``F.conv2d``, picked by shape only."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from resnet.engine import kernels
from resnet.engine.config import TrainConfig
from resnet.engine.kernels import SmallMapConvolutions, small_map_conv, takes_small_map
from resnet.engine.setup import StepContext
from resnet.errors import ConfigError

# (batch, in, out, height, width, kernel, stride, padding, bias, channels_last)
GEOMETRIES = [
    (2, 3, 4, 2, 2, 3, 1, 1, False, True),  # ResNet-18's layer4 at 64x64
    (2, 3, 5, 4, 4, 3, 2, 1, True, False),  # the stride-2 conv into it
    (2, 3, 4, 4, 4, 1, 2, 0, True, True),  # the 1x1 downsample shortcut
    (1, 2, 3, 5, 3, 3, 2, 0, True, False),  # no padding, a non-square map
    (3, 2, 2, 3, 3, 3, 1, 1, False, False),  # ResNet-9's last block at 28x28
    (2, 2, 3, 1, 1, 3, 1, 1, True, True),  # a single position: only the centre tap counts
]


def _inputs(batch, c_in, c_out, height, width, kernel, bias, channels_last, dtype):
    x = torch.randn(batch, c_in, height, width, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(c_out, c_in, kernel, kernel, dtype=dtype)
    b = torch.randn(c_out, dtype=dtype) if bias else None
    return [t.requires_grad_() if t is not None else None for t in (x, weight, b)]


def _assert_same_as(conv, x, weight, b, stride, padding):
    """``small_map_conv`` equals ``conv`` (F.conv2d or F.conv3d) in float64: output, every
    gradient, and gradcheck of the hand-written backward against finite differences."""
    ours = small_map_conv(x, weight, b, stride, padding)
    reference = conv(x, weight, b, stride, padding)
    assert ours.shape == reference.shape
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)
    inputs = [t for t in (x, weight, b) if t is not None]
    grad = torch.randn_like(reference)
    for mine, theirs in zip(torch.autograd.grad(ours, inputs, grad),
                            torch.autograd.grad(reference, inputs, grad)):  # fmt: skip
        torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda x, w, b: small_map_conv(x, w, b, stride, padding), (x, weight, b)
    )
    # Its output may be changed in place (SE's fc1 is followed by an inplace ReLU), with the
    # gradients that change implies; a view made inside the Function could not be.
    rectified = small_map_conv(x, weight, b, stride, padding).relu_()
    expected = conv(x, weight, b, stride, padding).relu_()
    for mine, theirs in zip(torch.autograd.grad(rectified, inputs, grad),
                            torch.autograd.grad(expected, inputs, grad)):  # fmt: skip
        torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-12)
    return ours


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: "x".join(map(str, g[:8])))
def test_matches_conv2d_forward_and_gradients_in_float64(geometry):
    """Forward equals ``F.conv2d``; gradcheck proves the hand-written backward (col2im, the
    weight product, the bias sum) against finite differences."""
    batch, c_in, c_out, height, width, kernel, stride, padding, bias, channels_last = geometry
    torch.manual_seed(0)
    x, weight, b = _inputs(batch, c_in, c_out, height, width, kernel, bias, channels_last,
                           torch.float64)  # fmt: skip
    ours = _assert_same_as(F.conv2d, x, weight, b, stride, padding)
    assert ours.is_contiguous(memory_format=torch.channels_last) == channels_last or height == 1


def test_under_bf16_autocast_it_computes_in_bf16_like_conv2d():
    torch.manual_seed(0)
    x, weight, _ = _inputs(8, 64, 64, 2, 2, 3, False, True, torch.float32)
    grad = torch.randn(8, 64, 2, 2)
    results = []
    for conv in (F.conv2d, small_map_conv):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = conv(x, weight, None, 1, 1)
        assert out.dtype == torch.bfloat16
        grads = torch.autograd.grad(out, (x, weight), grad.to(out.dtype))
        assert [g.dtype for g in grads] == [torch.float32, torch.float32]
        results.append((out.float(), *grads))
    for ours, reference in zip(results[1], results[0]):
        scale = reference.abs().max()
        assert (ours - reference).abs().max() <= 2e-2 * scale


@pytest.mark.parametrize(
    ("shape", "weight", "options", "expected"),
    [
        ((2, 8, 2, 2), (8, 8, 3, 3), {"padding": 1}, True),
        ((2, 8, 2, 2, 2), (8, 8, 3, 3, 3), {"padding": 1}, True),  # conv3d, 8 outputs
        ((2, 8, 3, 3, 3), (8, 8, 3, 3, 3), {"padding": 1}, False),  # 27 outputs
        ((2, 8, 2, 2), (8, 8, 3, 3, 3), {"padding": 1}, False),  # 4D input, 3D weight
        ((2, 8, 2, 4), (8, 8, 3, 3), {"padding": 1}, True),  # 8 outputs: float32's limit
        ((2, 8, 3, 3), (8, 8, 3, 3), {"padding": 1}, False),  # 9: oneDNN is as fast
        ((2, 8, 4, 4), (8, 8, 3, 3), {"padding": 1}, False),
        ((2, 8, 4, 4), (8, 8, 3, 3), {"padding": 1, "stride": 2}, True),  # 2x2 out
        ((2, 8, 6, 6), (8, 8, 3, 3), {"padding": 1, "stride": 2}, False),  # 3x3 out
        ((2, 8, 8, 8), (8, 8, 3, 3), {"padding": 1}, False),
        ((2, 8, 2, 2), (8, 4, 3, 3), {"padding": 1, "groups": 2}, False),
        ((2, 8, 2, 2), (8, 8, 3, 3), {"padding": 2, "dilation": 2}, False),
        ((2, 8, 2, 2), (8, 8, 3, 3), {"padding": "same"}, False),
        ((8, 2, 2), (8, 8, 3, 3), {"padding": 1}, False),  # unbatched
        ((2, 4, 2, 2), (8, 8, 3, 3), {"padding": 1}, False),  # wrong channels: conv2d's error
        ((2, 8, 2, 2), (8, 8, 3, 3), {}, False),  # kernel larger than the map: conv2d's error
    ],
)
def test_the_kernel_is_picked_by_output_size_and_geometry(shape, weight, options, expected):
    assert takes_small_map(torch.zeros(shape), torch.zeros(weight), **options) is expected


@pytest.mark.parametrize(
    ("amx", "side", "expected"),
    [(True, 4, True), (True, 5, False), (False, 2, True), (False, 3, False)],
)
def test_bfloat16_takes_4x4_maps_only_on_amx(monkeypatch, amx, side, expected):
    """bf16 (under autocast, as the engine runs it) takes the kernel up to 16 outputs where AMX
    tiles do the products, and up to 8 elsewhere (both branches, by faking the probe)."""
    monkeypatch.setattr(kernels, "cpu_has_amx", lambda: amx)
    x, weight = torch.zeros(2, 8, side, 4), torch.zeros(8, 8, 3, 3)
    assert takes_small_map(x, weight, padding=1) is (side * 4 <= 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert takes_small_map(x, weight, padding=1) is expected
    assert takes_small_map(x.bfloat16(), weight.bfloat16(), padding=1) is expected
    assert kernels.max_output_positions(torch.int64) == 0


def test_the_amx_probe_is_the_cpu_capabilities_one():
    from resnet.device import cpu_capabilities

    assert kernels.cpu_has_amx() is bool(cpu_capabilities()["amx"])


def test_the_mode_reroutes_only_small_maps_and_changes_no_result(monkeypatch):
    """ResNet-18 at 64x64 (layer4 on 2x2 maps): inside the mode its small convolutions take
    the kernel, the rest stay native, and logits and every gradient match the native run."""
    from resnet.models import create_model

    sides = []  # the output side of each convolution the kernel ran

    def recording(*args):
        out = original(*args)
        sides.append(out.shape[-1])
        return out

    original = kernels.small_map_conv
    monkeypatch.setattr(kernels, "small_map_conv", recording)
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10).double()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    runs = []
    for mode in (None, SmallMapConvolutions()):
        model.zero_grad()
        if mode is None:
            logits = model(x)
        else:
            with mode:
                logits = model(x)
        logits.square().sum().backward()
        runs.append([logits] + [p.grad.clone() for p in model.parameters()])
    # layer4 (2x2 out): four 3x3 convs and a 1x1 shortcut; layer3's 4x4 stays native in
    # float32 and float64 (in bf16 on a CPU with AMX it takes the kernel too)
    assert sides == [2] * 5
    for ours, reference in zip(runs[1], runs[0]):
        torch.testing.assert_close(ours, reference, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    ("setting", "device", "compiled", "expected"),
    [("auto", "cpu", False, True), ("native", "cpu", False, False),
     ("auto", "cpu", True, False), ("auto", "meta", False, False)],
)  # fmt: skip
def test_step_context_uses_the_kernels_where_the_config_says(setting, device, compiled, expected):
    amp = "bf16" if device == "cpu" else "off"
    context = StepContext(amp, setting, torch.device(device), compiled=compiled)
    assert (context.kernels is not None) is expected
    assert context.precision == amp
    for _ in range(2):  # reusable: every step enters and leaves the same context
        with context:
            assert torch.is_autocast_enabled("cpu") is (amp == "bf16")
        assert not torch.is_autocast_enabled("cpu")


def test_conv_kernels_is_checked_and_recorded():
    assert TrainConfig().conv_kernels == "auto"
    assert TrainConfig.from_dict({"conv_kernels": "native"}).to_dict()["conv_kernels"] == "native"
    with pytest.raises(ConfigError, match="conv_kernels must be one of auto, native"):
        TrainConfig.from_dict({"conv_kernels": "fast"})


# (batch, in, out, depth/height/width, kernel, stride, padding, bias, channels_last)
VOLUME_GEOMETRIES = [
    (2, 3, 4, (2, 2, 2), 3, 1, 1, False, True),  # a 3D ResNet's last stage at 32^3
    (2, 3, 4, (4, 4, 3), 3, 2, 1, True, False),  # the stride-2 conv into it, uneven sides
    (1, 2, 3, (1, 1, 1), 3, 1, 1, True, True),  # one voxel: only the centre tap counts
]


@pytest.mark.parametrize("geometry", VOLUME_GEOMETRIES, ids=lambda g: str(g[3]))
def test_volumes_match_conv3d_forward_and_gradients_in_float64(geometry):
    batch, c_in, c_out, size, kernel, stride, padding, bias, channels_last = geometry
    torch.manual_seed(0)
    x = torch.randn(batch, c_in, *size, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    weight = torch.randn(c_out, c_in, kernel, kernel, kernel, dtype=torch.float64)
    b = torch.randn(c_out, dtype=torch.float64) if bias else None
    for t in (x, weight, b):
        if t is not None:
            t.requires_grad_()
    _assert_same_as(F.conv3d, x, weight, b, stride, padding)


def test_a_3d_resnet_gives_the_same_numbers_inside_the_mode(monkeypatch):
    """A MONAI-style 3D ResNet on 16^3 volumes: its stages on 2^3 and 1^3 maps take the
    kernel, and logits and gradients match the native run."""
    from resnet.models import create_model

    sides = []
    original = kernels.small_map_conv

    def recording(*args):
        out = original(*args)
        sides.append(tuple(out.shape[2:]))
        return out

    monkeypatch.setattr(kernels, "small_map_conv", recording)
    torch.manual_seed(0)
    model = create_model("resnet10_3d", num_classes=3, in_chans=1, widen_factor=0.25).double()
    x = torch.randn(2, 1, 16, 16, 16, dtype=torch.float64)
    runs = []
    for mode in (None, SmallMapConvolutions()):
        model.zero_grad()
        with mode if mode is not None else torch.enable_grad():
            logits = model(x)
        logits.square().sum().backward()
        runs.append([logits] + [p.grad.clone() for p in model.parameters()])
    assert sides and all(math.prod(side) <= 8 for side in sides)
    assert (2, 2, 2) in sides and (1, 1, 1) in sides
    for ours, reference in zip(runs[1], runs[0]):
        torch.testing.assert_close(ours, reference, rtol=1e-9, atol=1e-9)
