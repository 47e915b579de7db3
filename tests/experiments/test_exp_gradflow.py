import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet.experiments.gradflow import (
    gradient_norms_by_depth,
    run_gradflow,
    weight_tensors_in_depth_order,
)
from resnet.models.cifar import cifar_resnet
from resnet.run import Run


@pytest.mark.parametrize("residual", [True, False])
def test_one_norm_per_conv_and_fc_weight_in_depth_order(residual):
    model = cifar_resnet(8, residual=residual, in_chans=1, num_classes=4)
    x, y = torch.randn(6, 1, 8, 8), torch.randint(0, 4, (6,))
    rows = gradient_norms_by_depth(model, x, y)
    expected = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(rows) == len(expected) == 8  # 6n+2 layers with n=1
    assert rows[0]["name"] == "conv1.weight" and rows[-1]["name"] == "fc.weight"
    assert [r["name"] for r in rows][1:3] == ["layer1.0.conv1.weight", "layer1.0.conv2.weight"]
    # The norms equal an independent autograd computation of the same gradients.
    model.zero_grad()
    weights = [p for _, p in weight_tensors_in_depth_order(model)]
    model.train()
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), weights)
    for row, grad in zip(rows, grads):
        assert row["norm"] == pytest.approx(float(grad.double().norm()), rel=1e-5)
        assert row["norm"] > 0


def test_run_gradflow_on_a_real_batch_of_tiny_data(tiny_dataset):
    result = run_gradflow(
        tiny_dataset, depth=20, steps=1, batch_size=16, run=Run.open(device="cpu"), progress=False
    )
    assert [n["label"] for n in result["networks"]] == [
        "plain20 (BN)", "plain20 (no BN)", "resnet20 (BN)", "resnet20 (no BN)",
    ]  # fmt: skip
    for net in result["networks"]:
        assert net["num_weights"] == len(net["norms_init"]) == len(net["norms_after"]) == 20
        assert net["ratio_init"] == pytest.approx(net["norms_init"][0] / net["norms_init"][-1])
        assert len(net["step_losses"]) == 1
    # Same seed, same batch: BN and no-BN nets differ, so their gradients must differ.
    a, b = result["networks"][0]["norms_init"], result["networks"][1]["norms_init"]
    assert not all(math.isclose(u, v) for u, v in zip(a, b))


def test_too_few_images_for_the_steps_is_a_config_error(tiny_dataset):
    from resnet.errors import ConfigError

    with pytest.raises(ConfigError, match="too few"):
        run_gradflow(tiny_dataset, depth=20, steps=10, batch_size=16, progress=False)
    for lr in (0.0, -0.1, float("nan"), float("inf")):  # NaN steps make every later norm NaN
        with pytest.raises(ConfigError, match="lr must be a finite number > 0"):
            run_gradflow(tiny_dataset, depth=20, steps=1, lr=lr, progress=False)
    # A network given twice would be probed twice and shown as two rows of one result.
    with pytest.raises(ConfigError, match=r"norms \['batch', 'batch'\] repeat 'batch'"):
        run_gradflow(tiny_dataset, depth=20, norms=("batch", "batch"), progress=False)
    with pytest.raises(ConfigError, match="kinds .* repeat 'plain'; give each once"):
        run_gradflow(tiny_dataset, depth=20, kinds=("plain", "plain"), progress=False)


def test_each_normalization_is_labelled_by_its_name(tiny_dataset):
    result = run_gradflow(
        tiny_dataset, depth=20, steps=0, batch_size=8, kinds=("resnet",), norms=("group", "none"),
        run=Run.open(device="cpu"), progress=False,
    )  # fmt: skip
    assert [n["label"] for n in result["networks"]] == ["resnet20 (GN)", "resnet20 (no BN)"]
