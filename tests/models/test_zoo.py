"""The timm-style test matrix: every registered model through the same checks."""

import contextlib
import copy

import pytest
import torch
from safetensors.torch import save_file

from resnet import create_model, list_models, load_weights, optimize_for_inference
from resnet.engine.kernels import SmallMapConvolutions
from resnet.models import model_entry
from resnet.models.antialiased import ANTI_ALIASED_VARIANTS
from resnet.models.bit import BIT_VARIANTS
from resnet.models.clip import CLIP_VARIANTS
from resnet.models.profile import count_parameters, stage_summary
from resnet.models.resnet_d import PREACT_VARIANTS, RESNET_D_VARIANTS
from resnet.models.senet import ATTENTION_VARIANTS, LEGACY_SE_VARIANTS

# Compared with timm's nets (test_timm_parity.py, test_timm_resnetv2.py, test_senet_legacy.py,
# test_antialiased.py, test_clip.py).
TIMM_NAMES = set(RESNET_D_VARIANTS) | set(ATTENTION_VARIANTS) | set(PREACT_VARIANTS)
TIMM_NAMES |= set(BIT_VARIANTS) | set(LEGACY_SE_VARIANTS) | set(ANTI_ALIASED_VARIANTS)
TIMM_NAMES |= set(CLIP_VARIANTS) | {n.replace("_clip", "_clip_gap") for n in CLIP_VARIANTS}

ALL_MODELS = list_models()
# The deepest and widest nets share their code with a lighter sibling in the full matrix (e.g.
# resnet152 with resnet50, wrn28_10 with wrn16_4); to keep the suite fast they get the forward
# check only, and the ten torchvision ones are also compared with torchvision.
HEAVY_MARKERS = (
    "101", "152", "110", "1202", "200", "wrn22", "wrn28", "wide_resnet", "resnet50_3d",
    # timm's variants: one light net per option stays in the matrix (below)
    "resnetrs", "resnet14t", "34d", "seresnet34", "50c", "50d", "50t", "seresnet50", "seresnext50",
    "x2", "x3", "x4",  # BiT's wide nets: bit_resnet50x1 stays
    "50s", "50_gn", "seresnext26t", "ecaresnetlight", "269",
    "aa50", "aa201", "blur50",  # anti-aliased: resnetblur18 stays
    "clip_gap", "50x",  # CLIP: resnet50_clip stays
    "34_v2", "50_v2",  # Gluon's v2: gluon_resnet18_v2 stays (preact_resnet50: the bottleneck)
    "resnet34", "wrn40", "wrn16_8",  # resnet18(_3d), preact_resnet18 and wrn16_4 stay
    "50w",  # SimCLR's and SwAV's widened ResNet-50s: resnet50's code, test_self_supervised.py
    "senet154",  # compared with timm's net in test_senet_legacy.py
    "r3d", "mc3", "r2plus1d",  # torchvision's video nets: resnet18_3d's code (test_video_resnet.py)
)  # fmt: skip
HEAVY = [n for n in ALL_MODELS if any(marker in n for marker in HEAVY_MARKERS)]
# ResNet-RS-50 stays: the one net with a conv stem pool.
MATRIX_MODELS = [n for n in ALL_MODELS if n not in HEAVY] + ["resnetrs50"]
# timm's deep nets are compared with timm at a small input (test_timm_parity.py), which already
# shows that their forward runs and gives timm's numbers; the generic forward check skips them.
# Hundreds of millions of parameters in a sibling's code at another width: their sizes are
# checked on the meta device (test_self_supervised.py, test_torchvision_parity.py).
META_ONLY = ("resnet50w4", "resnet50w5", "resnext101_32x48d")
HEAVY_FORWARD = [
    n for n in HEAVY if n not in TIMM_NAMES and n not in MATRIX_MODELS and n not in META_ONLY
]


# Module-scoped parametrized fixtures make pytest run every check of one model together, so
# each model is built once.
@pytest.fixture(scope="module", params=MATRIX_MODELS)
def name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    built = create_model(name, num_classes=10)
    _calibrate_batch_norm(built, name)
    return built


def _calibrate_batch_norm(model: torch.nn.Module, name: str) -> None:
    """Give BN the statistics of a real batch, as training would.

    With the default statistics (mean 0, var 1) an untrained 1202-layer net in eval mode adds
    600 unnormalised branches and overflows; a trained one never sees those defaults. Eight
    images: the variance of two on a 1x1 map can be 1e-10, which scales features to 1e9, where
    an attention pool's softmax (CLIP's) turns float64 rounding into another answer.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(_input(name, model, batch=8))
    for norm in norms:
        norm.momentum = 0.1


def _spatial_dims(model: torch.nn.Module) -> int:
    return model.spatial_dims


def _input(
    name: str, model: torch.nn.Module, batch: int = 2, channels: int | None = None
) -> torch.Tensor:
    entry = model_entry(name)
    channels = channels or model.in_chans
    side = 32 if entry.family == "imagenet" else min(entry.default_input_size, 32)
    if name in HEAVY and entry.family == "cifar" or _spatial_dims(model) == 3:
        side = 16
    torch.manual_seed(1)
    return torch.randn(batch, channels, *([side] * _spatial_dims(model)))


def test_forward_shape_and_no_nan(name, model):
    model.eval()
    with torch.no_grad():
        out = model(_input(name, model))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


def test_num_classes_and_in_chans(name, model):
    x = _input(name, model, channels=1)
    model = create_model(name, num_classes=7, in_chans=1).eval()
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 7)
    model.reset_classifier(4)
    with torch.no_grad():
        assert model(x).shape == (2, 4)


def test_backward_reaches_every_parameter(name, model):
    model.train()
    model.zero_grad(set_to_none=True)
    model(_input(name, model)).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:5]}"
    model.zero_grad(set_to_none=True)


def test_the_engines_small_map_kernels_train_it_as_its_own_convolutions(name, model):
    """The engine runs every step inside ``SmallMapConvolutions``: each net must train there,
    channels-last as the engine runs it, with the gradients of its own convolutions. SE's
    inplace ReLU on the kernel's output broke every SE net's first step. Volumes are left to
    test_engine_kernels.py (a 3D ResNet there), where float64 3D convolutions cost less."""
    if _spatial_dims(model) == 3:
        pytest.skip("3D: test_a_3d_resnet_gives_the_same_numbers_inside_the_mode")
    # Eval mode: train-mode BN over 2 samples of a 1x1 map is near-singular, and would turn
    # float64 rounding into differences as large as a real error.
    net = copy.deepcopy(model).double().eval()
    x = _input(name, net).double()
    if _spatial_dims(net) > 1:
        layout = torch.channels_last if _spatial_dims(net) == 2 else torch.channels_last_3d
        net, x = net.to(memory_format=layout), x.contiguous(memory_format=layout)
    runs = []
    for mode in (contextlib.nullcontext(), SmallMapConvolutions()):
        net.zero_grad(set_to_none=True)
        with mode:
            logits = net(x)
            logits.square().mean().backward()
        runs.append([logits.detach()] + [p.grad for p in net.parameters() if p.grad is not None])
    assert len(runs[0]) == len(runs[1])
    # float64 rounding, relative to each gradient's size (up to 1e13) or, for a gradient that is
    # zero but for rounding (an attention key's bias: softmax ignores a shift), to the largest.
    largest = max(reference.abs().max().item() for reference in runs[0][1:])
    for ours, reference in zip(runs[1], runs[0]):
        scale = max(reference.abs().max().item(), 1e-6 * largest)
        torch.testing.assert_close(ours, reference, rtol=1e-7, atol=1e-9 * scale)


def test_inference_optimisation_traces_it_and_keeps_its_outputs(name, model):
    """``optimize_for_inference`` (and so every export) folds BN by tracing the net with
    torch.fx: SE and ECA read ``x.dim()`` in forward, which fx cannot trace, and every SE,
    ECA and ResNet-RS net failed to export to TorchScript, pt2 and int8."""
    net = copy.deepcopy(model).double().eval()  # float64: untrained nets amplify rounding
    x = _input(name, net).double()
    with torch.no_grad():
        expected = net(x)
        got = optimize_for_inference(net)(x)
    scale = expected.abs().max().item()
    torch.testing.assert_close(got, expected, rtol=1e-7, atol=1e-9 * max(scale, 1.0))


def test_forward_features_then_head_equals_forward(name, model):
    model.eval()
    x = _input(name, model)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape[1] == model.num_features
        torch.testing.assert_close(model.forward_head(features), model(x))
        pooled = model.forward_head(features, pre_logits=True)
    assert pooled.shape == (2, model.num_features)


def test_channels_last_equals_contiguous(name, model):
    model.eval()
    x = _input(name, model)
    # float64, so that a deep plain net's amplified rounding noise cannot hide a real difference.
    model.double()
    x = x.double()
    with torch.no_grad():
        expected = model(x)
        if x.dim() == 3:  # 1D nets have no named format: store (N, C, L) as (N, L, C)
            out = model(x.transpose(1, 2).contiguous().transpose(1, 2))
        else:
            memory_format = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
            model.to(memory_format=memory_format)
            out = model(x.to(memory_format=memory_format))
    model.to(dtype=torch.float32, memory_format=torch.contiguous_format)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)


def test_torchscript_matches_eager(name, model):
    model.eval()
    scripted = torch.jit.script(model)
    x = _input(name, model)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x))


def test_save_and_load_round_trip(name, model, tmp_path):
    model.eval()
    path = tmp_path / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    fresh = create_model(name, num_classes=10).eval()
    report = load_weights(fresh, path)
    assert not report.adapted_conv1 and not report.dropped_classifier
    x = _input(name, model)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=0)


def test_features_only_shapes_match_feature_info(name, model):
    features_model = create_model(name, features_only=True).eval()
    x = _input(name, model)
    side = x.shape[-1]
    with torch.no_grad():
        features = features_model(x)
    assert len(features) == len(features_model.feature_info)
    for feature, info in zip(features, features_model.feature_info):
        assert feature.shape[1] == info["num_chs"]
        assert feature.shape[-1] == -(-side // info["reduction"])


def test_stage_summary_rows_add_up_and_follow_feature_info(name, model):
    """What ``resnet summary`` prints: stem, a row per stage, head; the counts sum to the total."""
    x = _input(name, model, batch=1)
    rows = stage_summary(model, tuple(x.shape[1:]))
    stages = [info["module"] for info in model.feature_info]
    assert [row["stage"] for row in rows] == ["stem", *stages, "head"]
    assert sum(row["params"] for row in rows) == count_parameters(model)
    assert rows[0]["params"] > 0 and rows[-1]["output_shape"] == (10,)
    for row, info in zip(rows[1:-1], model.feature_info):
        assert row["output_shape"][0] == info["num_chs"]
        assert row["output_shape"][-1] == -(-x.shape[-1] // info["reduction"])


@pytest.mark.parametrize("heavy_name", HEAVY_FORWARD)
def test_heavy_model_forward_shape_and_no_nan(heavy_name):
    torch.manual_seed(0)
    model = create_model(heavy_name, num_classes=10)
    _calibrate_batch_norm(model, heavy_name)
    x = _input(heavy_name, model, batch=2)
    with torch.no_grad():
        out = model.eval()(x)
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


ODD_MAP_MODELS = MATRIX_MODELS + sorted(set(ANTI_ALIASED_VARIANTS) - set(MATRIX_MODELS))


@pytest.mark.parametrize("name", ODD_MAP_MODELS)
def test_every_branch_keeps_its_shortcuts_size_on_odd_maps(name):
    """At 40 pixels a side the third stage meets a 5x5 map: a branch that rounds 5 / 2 otherwise
    than its shortcut stops on such images (timm's resnetaa50 does). Shapes only: meta device."""
    with torch.device("meta"):
        model = create_model(name, num_classes=3).eval()
        x = torch.empty(1, model.in_chans, *(40,) * _spatial_dims(model))
        assert model(x).shape == (1, 3)


@pytest.mark.parametrize("name", [n for n in ALL_MODELS if n.startswith("plain")])
def test_plain_and_residual_of_a_depth_have_equal_parameter_counts(name):
    residual_name = name.replace("plain", "resnet")
    assert count_parameters(create_model(name)) == count_parameters(create_model(residual_name))


def test_out_indices_select_stages():
    model = create_model("resnet18", features_only=True, out_indices=(1, 3))
    assert [i["module"] for i in model.feature_info] == ["layer2", "layer4"]
    assert [i["reduction"] for i in model.feature_info] == [8, 32]
    features = model(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape) for f in features] == [(1, 128, 8, 8), (1, 512, 2, 2)]
