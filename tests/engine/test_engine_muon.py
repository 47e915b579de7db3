"""optimizer muon: orthogonalised, norm-fixed steps for the filters a normalisation follows."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml
from engine_helpers import tiny_config
from torch import nn

from resnet.engine.budget import measure_step_times
from resnet.engine.config import TrainConfig
from resnet.engine.muon import Muon, orthogonalize, scale_invariant_filters, split_filters
from resnet.engine.optim import build_optimizer, param_groups
from resnet.engine.setup import StepContext
from resnet.engine.train import train
from resnet.errors import ConfigError
from resnet.models import create_model


@pytest.mark.parametrize("shape", [(64, 576), (300, 40)])
def test_orthogonalize_keeps_the_singular_vectors_and_evens_out_the_singular_values(shape):
    torch.manual_seed(0)
    # An ill-conditioned matrix: singular values from 0.1 to 10.
    u, _, vh = torch.linalg.svd(torch.randn(shape, dtype=torch.float64), full_matrices=False)
    spread = torch.logspace(-1, 1, min(shape), dtype=torch.float64)
    update = u @ torch.diag(spread) @ vh
    result = orthogonalize(update, steps=5, dtype=torch.float64)
    assert result.shape == update.shape and result.dtype == update.dtype
    values = torch.linalg.svdvals(result)
    # Every one ends near 1 (the quintic trades exactness for speed: about 0.7 to 1.2).
    assert values.min() > 0.6 and values.max() < 1.25
    cosine = torch.nn.functional.cosine_similarity(result.flatten(), (u @ vh).flatten(), dim=0)
    assert cosine > 0.95
    with pytest.raises(ValueError, match="2D matrix"):
        orthogonalize(torch.ones(2, 3, 4))


def _sgd_groups(model: nn.Module) -> list[dict]:
    return param_groups(model, weight_decay=1e-3, no_wd_norm_bias=True)


@pytest.mark.parametrize("nesterov", [False, True])
def test_groups_without_filters_train_exactly_as_under_torch_sgd(nesterov):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    reference = copy.deepcopy(model)
    ours = Muon(_sgd_groups(model), lr=0.1, momentum=0.9, nesterov=nesterov)
    theirs = torch.optim.SGD(_sgd_groups(reference), lr=0.1, momentum=0.9, nesterov=nesterov)
    for _ in range(3):
        x = torch.randn(8, 6)
        for net, optimizer in ((model, ours), (reference, theirs)):
            optimizer.zero_grad()
            net(x).square().sum().backward()
            optimizer.step()
    for mine, torchs in zip(model.parameters(), reference.parameters()):
        assert torch.equal(mine, torchs)


def test_a_muon_step_normalises_the_filters_and_moves_them_by_the_orthogonalised_momentum():
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10, in_chans=1)
    filters = scale_invariant_filters(model, 1, (28, 28))
    groups = split_filters(model, _sgd_groups(model), filters, muon_lr=0.05, lr=0.5)
    optimizer = Muon(groups, lr=0.5, momentum=0.9, muon_momentum=0.6, ns_steps=3)
    weight = model.layer2[0].conv1.weight
    assert [g["lr"] for g in optimizer.param_groups if g["muon"]] == [0.05]
    losses = []
    for _ in range(2):
        before = weight.detach().clone()
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(
            model(torch.randn(16, 1, 28, 28)), torch.randint(0, 10, (16,))
        )
        loss.backward()
        losses.append(loss.item())
        buffer = optimizer.state[weight].get("momentum_buffer", torch.zeros_like(weight))
        look_ahead = weight.grad + 0.6 * (0.6 * buffer + weight.grad)
        expected = before * weight.size(0) ** 0.5 / before.norm()
        expected -= 0.05 * orthogonalize(look_ahead.flatten(1), 3).view_as(weight)
        optimizer.step()
        torch.testing.assert_close(weight.detach(), expected)
    # The filters carry no weight decay; the BN and bias groups keep theirs (0 here).
    assert all(g["weight_decay"] == 0 for g in optimizer.param_groups if g["muon"])


def test_the_optimizer_state_round_trips_so_a_resume_takes_the_same_step():
    torch.manual_seed(0)
    model = create_model("resnet9_slim", num_classes=10, in_chans=1)

    def build(net):
        filters = scale_invariant_filters(net, 1, (28, 28))
        groups = split_filters(net, _sgd_groups(net), filters, muon_lr=0.1, lr=0.3)
        return Muon(groups, lr=0.3, momentum=0.9, nesterov=True)

    def step(net, optimizer, x):
        optimizer.zero_grad()
        net(x).square().mean().backward()
        optimizer.step()

    optimizer = build(model)
    step(model, optimizer, torch.randn(8, 1, 28, 28))
    resumed = copy.deepcopy(model)
    resumed_optimizer = build(resumed)
    resumed_optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    x = torch.randn(8, 1, 28, 28)
    step(model, optimizer, x)
    step(resumed, resumed_optimizer, x)
    for a, b in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def _names(model: nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.dim() >= 3 and p.requires_grad}


def test_only_filters_a_normalisation_follows_count_as_scale_invariant():
    torch.manual_seed(0)
    # Post-activation ResNets: every conv, the shortcut's 1x1 too, feeds a BatchNorm.
    plain = create_model("resnet18", num_classes=10)
    assert scale_invariant_filters(plain, 3, (32, 32)) == _names(plain)
    volumes = create_model("resnet10_3d", num_classes=2, in_chans=1)
    assert scale_invariant_filters(volumes, 1, (16, 16, 16)) == _names(volumes)
    # Pre-activation: a block's second conv (and its shortcut) is added before any norm, and
    # the stem conv feeds the first block's shortcut; only the blocks' first convs qualify.
    preact = create_model("preact_resnet18", num_classes=10)
    expected = {n for n in _names(preact) if n.endswith("conv1.weight") and n != "conv1.weight"}
    assert scale_invariant_filters(preact, 3, (32, 32)) == expected
    # Squeeze-excitation's 1x1 convs gate the features: not invariant.
    se = create_model("seresnet18", num_classes=10)
    assert scale_invariant_filters(se, 3, (32, 32)) == {n for n in _names(se) if ".se." not in n}
    # A filter of zeros has no scale to keep; frozen filters are not trained at all.
    zeroed = create_model("resnet20", num_classes=10, in_chans=1)
    nn.init.zeros_(zeroed.layer1[0].conv2.weight)
    zeroed.conv1.weight.requires_grad_(False)
    found = scale_invariant_filters(zeroed, 1, (28, 28))
    assert found == _names(zeroed) - {"layer1.0.conv2.weight"}


def test_the_check_leaves_the_model_and_the_random_state_alone():
    model = create_model("resnet20", num_classes=10, in_chans=1)
    before = copy.deepcopy(model.state_dict())
    rng = torch.get_rng_state()
    scale_invariant_filters(model, 1, (28, 28))
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_muon_run_trains_records_its_settings_and_times_its_own_steps(tiny_npz, tmp_path, capsys):
    options = dict(model_kwargs={}, optimizer="muon", muon_lr=0.05, epochs=2)
    result = train(tiny_config(tiny_npz, tmp_path, **options))
    assert "muon: 19 filter banks take Muon steps" in capsys.readouterr().out
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert (saved["optimizer"], saved["muon_lr"], saved["muon_momentum"]) == ("muon", 0.05, 0.6)
    assert result.metrics["test_acc"] > 0.5  # 4 classes: chance is 0.25
    # The time budget times the run's own optimizer, not plain SGD.
    built = []

    def optimizer_for(trial):
        built.append(trial)
        return torch.optim.SGD(trial.parameters(), lr=0.0)

    model = create_model("resnet20", num_classes=10, in_chans=1)
    batch = (torch.randn(4, 1, 16, 16), torch.randint(0, 10, (4,)))
    context = StepContext("off", "auto", torch.device("cpu"))
    measure_step_times(model, batch, context, steps=1, optimizer_for=optimizer_for)
    assert len(built) == 1 and built[0] is not model


def test_a_budgeted_muon_run_splits_its_trial_as_the_run_without_checking_again(
    tiny_npz, tmp_path, monkeypatch
):
    """The time budget's trial copy takes the run's Muon filters by name: the invariance check
    (one forward per filter bank) runs once, not once more for the copy."""
    import resnet.engine.train as engine_train

    checks, trial_filters = [], []
    check, measure = engine_train.scale_invariant_filters, engine_train.measure_step_times
    monkeypatch.setattr(
        engine_train, "scale_invariant_filters", lambda *a, **k: checks.append(1) or check(*a, **k)
    )

    def measure_recording(model, batch, context, *, optimizer_for, **kwargs):
        def build(trial):
            optimizer = optimizer_for(trial)
            trial_filters.append(optimizer.filter_names(trial))
            return optimizer

        return measure(model, batch, context, optimizer_for=build, **kwargs)

    monkeypatch.setattr(engine_train, "measure_step_times", measure_recording)
    options = dict(model_kwargs={}, optimizer="muon", time_budget=3600, epochs=1)
    train(tiny_config(tiny_npz, tmp_path, **options))
    model = create_model("resnet20", num_classes=4, in_chans=1)
    assert checks == [1]
    assert trial_filters == [scale_invariant_filters(model, 1, (16, 16))]


def test_build_optimizer_points_muon_to_the_builder_that_knows_the_model():
    groups = _sgd_groups(nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="build_run_optimizer"):
        build_optimizer(groups, "muon", lr=0.1)


@pytest.mark.parametrize("key, value", [("muon_lr", 0), ("muon_momentum", 1.0)])
def test_muon_settings_out_of_range_are_config_errors(key, value):
    with pytest.raises(ConfigError, match=key):
        TrainConfig(optimizer="muon", **{key: value})
