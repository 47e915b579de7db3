import pytest
import torch

from resnet.engine.checkpoint import load_checkpoint, save_checkpoint
from resnet.errors import ConfigError
from resnet.experiments.common import eval_batches, evaluate_loss_accuracy
from resnet.experiments.landscape import (
    filter_normalized_direction,
    loss_along_directions,
    run_landscape,
)
from resnet.models import create_model
from resnet.run import Run


def test_each_direction_filter_has_the_norm_of_its_weight_filter():
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=4, in_chans=1)
    direction = filter_normalized_direction(model, torch.Generator().manual_seed(1))
    checked = 0
    for param, d in zip(model.parameters(), direction):
        assert d.shape == param.shape
        if param.dim() <= 1:  # BN and bias directions are zero (arXiv 1712.09913)
            assert torch.count_nonzero(d) == 0
            continue
        torch.testing.assert_close(d.flatten(1).norm(dim=1), param.flatten(1).norm(dim=1))
        assert not torch.allclose(d, param)  # a random direction, not the weights themselves
        checked += 1
    assert checked == 20  # 19 convs and the fc


def test_landscape_at_the_origin_is_the_checkpoint_loss(tmp_path, tiny_dataset):
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=4, in_chans=1)
    model.train()
    with torch.no_grad():  # non-trivial BN running statistics
        model(torch.randn(32, 1, 8, 8))
    stem = tmp_path / "ckpt"
    save_checkpoint(stem, model, data_meta=tiny_dataset.meta, epoch=1, step=1, metrics={})
    result = run_landscape(
        {"resnet20": stem}, dataset=tiny_dataset, points_1d=5, points_2d=3, span=0.5,
        eval_subset=None, batch_size=16, run=Run.open(device="cpu"), progress=False,
    )  # fmt: skip
    loaded, _ = load_checkpoint(stem)
    reference = evaluate_loss_accuracy(loaded, eval_batches(tiny_dataset, batch_size=16))["loss"]
    net = result["networks"][0]
    assert net["alphas"][2] == 0.0 and net["alphas_2d"][1] == 0.0
    assert net["origin_loss"] == pytest.approx(reference, abs=1e-5)
    assert net["loss_2d"][1][1] == pytest.approx(reference, abs=1e-5)
    assert net["loss_1d"][0] != pytest.approx(reference, abs=1e-3)  # moving changes the loss


def test_loss_along_directions_restores_the_weights(tiny_dataset):
    torch.manual_seed(0)
    model = create_model("plain20", num_classes=4, in_chans=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    direction = filter_normalized_direction(model, torch.Generator().manual_seed(0))
    batches = eval_batches(tiny_dataset, batch_size=48)
    losses = loss_along_directions(model, batches, [direction], [[-1.0], [0.0], [1.0]])
    assert len(losses) == 3
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("span", [0.0, -1.0, float("nan"), float("inf")])
def test_span_must_be_a_finite_positive_number(tmp_path, tiny_dataset, span):
    with pytest.raises(ConfigError, match="span must be a finite number > 0"):
        run_landscape({"x": tmp_path / "absent"}, dataset=tiny_dataset, span=span, progress=False)
