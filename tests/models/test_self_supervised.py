"""Checkpoints of self-supervised methods (MoCo v1/v2/v3, SimSiam, DINO, Barlow Twins, VICReg,
SwAV, and VISSL's): each built here as its method's code builds it (the attribute names of its
builder, its heads, its DDP ``module.`` prefix and its checkpoint's container), saved, and loaded
into our model, which must then compute the features of the network the method's linear
evaluation keeps, and never load a projection head as a classifier."""

import argparse

import pytest
import torch
import torchvision
from parity_helpers import randomise_norms
from torch import nn

from resnet import create_model, load_weights
from resnet.errors import WeightsError
from resnet.models.identify import inspect_weights
from resnet.models.pretrained import read_weights


def _encoder(seed: int, num_classes: int = 1000, name: str = "resnet18") -> nn.Module:
    """A torchvision net with trained-looking BatchNorm statistics, so a wrong BN shows."""
    torch.manual_seed(seed)
    net = getattr(torchvision.models, name)(num_classes=num_classes)
    randomise_norms(net)  # statistics as a trained net's, so a wrong BN shows
    return net


def _mlp(*sizes: int, bias: bool = True, last_bn: bool = False) -> nn.Sequential:
    """Linear, BatchNorm1d, ReLU between the sizes; the last Linear alone (or with a BN)."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 2):
        layers += [nn.Linear(sizes[i], sizes[i + 1], bias=bias), nn.BatchNorm1d(sizes[i + 1])]
        layers.append(nn.ReLU())
    layers.append(nn.Linear(sizes[-2], sizes[-1], bias=bias))
    return nn.Sequential(*layers, *([nn.BatchNorm1d(sizes[-1], affine=False)] if last_bn else []))


def _ddp(module: nn.Module) -> dict:
    """The state_dict of ``module`` wrapped in DistributedDataParallel."""
    return {f"module.{k}": v for k, v in module.state_dict().items()}


def _optimizer() -> dict:
    return {"state": {}, "param_groups": [{"lr": 0.03, "momentum": 0.9, "params": [0, 1]}]}


def _moco(mlp: bool) -> tuple[dict, nn.Module]:
    """facebookresearch/moco: ``MoCo(base_encoder, dim=128, K, m, T, mlp)``: two encoders of
    ``num_classes=dim``, with ``mlp`` their fc becomes Linear-ReLU-fc; a queue and its pointer."""
    moco = nn.Module()
    moco.encoder_q, moco.encoder_k = _encoder(0, 128), _encoder(1, 128)
    if mlp:
        for encoder in (moco.encoder_q, moco.encoder_k):
            encoder.fc = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), encoder.fc)
    moco.register_buffer("queue", torch.randn(128, 256))
    moco.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))
    checkpoint = {"epoch": 200, "arch": "resnet18", "state_dict": _ddp(moco)}
    return {**checkpoint, "optimizer": _optimizer()}, moco.encoder_q


def _moco_v3() -> tuple[dict, nn.Module]:
    """facebookresearch/moco-v3 (ResNet): base and momentum encoders whose fc is a 2-layer MLP
    projector ending in an affine-free BN, and a predictor; the AMP scaler's state beside."""
    moco = nn.Module()
    moco.base_encoder, moco.momentum_encoder = _encoder(0), _encoder(1)
    for encoder in (moco.base_encoder, moco.momentum_encoder):
        encoder.fc = _mlp(512, 64, 32, bias=False, last_bn=True)
    moco.predictor = _mlp(32, 64, 32, bias=False)
    scaler = {"scale": 65536.0, "growth_factor": 2.0, "_growth_tracker": 0}
    checkpoint = {"epoch": 100, "arch": "resnet18", "state_dict": _ddp(moco), "scaler": scaler}
    return {**checkpoint, "optimizer": _optimizer()}, moco.base_encoder


def _simsiam() -> tuple[dict, nn.Module]:
    """facebookresearch/simsiam: the encoder's fc becomes a 3-layer projector ending in an
    affine-free BN; a bottleneck predictor beside."""
    simsiam = nn.Module()
    simsiam.encoder = _encoder(0, 32)
    projector = _mlp(512, 512, 512, 512, bias=False)[:-1]
    simsiam.encoder.fc = nn.Sequential(
        *projector, simsiam.encoder.fc, nn.BatchNorm1d(32, affine=False)
    )
    simsiam.predictor = _mlp(32, 16, 32)
    checkpoint = {"epoch": 100, "arch": "resnet18", "state_dict": _ddp(simsiam)}
    return {**checkpoint, "optimizer": _optimizer()}, simsiam.encoder


def _dino_wrapper(seed: int) -> nn.Module:
    """DINO's MultiCropWrapper(backbone with fc = Identity, DINOHead(mlp, weight-normed
    last_layer))."""
    wrapper = nn.Module()
    wrapper.backbone = _encoder(seed)
    wrapper.backbone.fc = nn.Identity()
    wrapper.head = nn.Module()
    wrapper.head.mlp = nn.Sequential(nn.Linear(512, 64), nn.GELU(), nn.Linear(64, 16))
    last = nn.Linear(16, 100, bias=False)
    wrapper.head.last_layer = nn.utils.parametrizations.weight_norm(last)
    return wrapper


def _dino() -> tuple[dict, nn.Module]:
    """facebookresearch/dino's full checkpoint: student and teacher (both DDP-wrapped for a
    ResNet), their optimizer, the loss's centre and the training arguments as a Namespace."""
    student, teacher = _dino_wrapper(0), _dino_wrapper(1)
    args = argparse.Namespace(arch="resnet18", out_dim=100, lr=0.3, output_dir=".")
    checkpoint = {"student": _ddp(student), "teacher": _ddp(teacher), "epoch": 800}
    checkpoint |= {
        "optimizer": _optimizer(),
        "args": args,
        "dino_loss": {"center": torch.zeros(1, 100)},
    }
    return checkpoint, teacher.backbone


def _barlow_twins() -> tuple[dict, nn.Module]:
    """facebookresearch/barlowtwins: backbone (fc = Identity), a bias-free projector and the
    loss's affine-free BN, saved as ``dict(epoch, model, optimizer)``."""
    barlow = nn.Module()
    barlow.backbone = _encoder(0)
    barlow.backbone.fc = nn.Identity()
    barlow.projector = _mlp(512, 64, 64, bias=False)
    barlow.bn = nn.BatchNorm1d(64, affine=False)
    return {"epoch": 1000, "model": _ddp(barlow), "optimizer": _optimizer()}, barlow.backbone


def _vicreg() -> tuple[dict, nn.Module]:
    """facebookresearch/vicreg: backbone without fc and a projector, ``dict(epoch, model,
    optimizer)``."""
    vicreg = nn.Module()
    vicreg.backbone = _encoder(0)
    del vicreg.backbone.fc
    vicreg.backbone.fc = nn.Identity()
    projector = _mlp(512, 64, 64)
    projector[-1] = nn.Linear(64, 64, bias=False)
    vicreg.projector = projector
    return {"epoch": 1000, "model": _ddp(vicreg), "optimizer": _optimizer()}, vicreg.backbone


def _swav(multi_prototypes: bool = False) -> tuple[dict, nn.Module]:
    """facebookresearch/swav's released ``swav_800ep_pretrain.pth.tar``: the DDP state_dict of
    its ResNet, the trunk at the top level beside its projection head and prototypes."""
    swav = _encoder(0)
    swav.fc = nn.Identity()
    swav.projection_head = _mlp(512, 64, 32)
    if multi_prototypes:  # MultiPrototypes: one Linear per head
        swav.prototypes = nn.Module()
        swav.prototypes.prototypes0 = nn.Linear(32, 100, bias=False)
        swav.prototypes.prototypes1 = nn.Linear(32, 50, bias=False)
    else:
        swav.prototypes = nn.Linear(32, 100, bias=False)
    trunk = _encoder(0)
    trunk.fc = nn.Identity()
    return _ddp(swav), trunk


def _vissl() -> tuple[dict, nn.Module]:
    """facebookresearch/vissl's checkpoint (``model_final_checkpoint_phase*.torch``): the
    trunk's modules in a ModuleDict ``_feature_blocks`` (conv1, bn1, conv1_relu, maxpool,
    layer1..4, avgpool, flatten), a linear head, ClassyVision's training state around them."""
    resnet = _encoder(0, name="resnet50")
    names = ("conv1", "bn1", "conv1_relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
    trunk = nn.Module()
    trunk._feature_blocks = nn.ModuleDict(zip(names, list(resnet.children())[:8]))
    heads = {"0.clf.0.weight": torch.zeros(1000, 2048), "0.clf.0.bias": torch.zeros(1000)}
    classy = {"train": True, "base_model": {"model": {"trunk": trunk.state_dict(), "heads": heads}}}
    classy |= {"optimizer": _optimizer(), "phase_idx": 104, "num_updates": 500, "losses": []}
    checkpoint = {"classy_state_dict": classy, "phase_idx": 104, "iteration": 500}
    return {**checkpoint, "type": "consolidated"}, resnet


def _openmmlab_checkpoint(algorithm: nn.Module) -> dict:
    """mmengine's checkpoint: its ``meta`` beside the algorithm's state_dict."""
    meta = {"mmengine_version": "0.10.3", "epoch": 200, "iter": 1000, "seed": 0}
    meta |= {"dataset_meta": {}, "experiment_name": "mocov2_resnet50_8xb32-coslr-200e_in1k"}
    return {"meta": meta, "state_dict": algorithm.state_dict()}


def _openmmlab_trunk(seed: int) -> nn.Module:
    """mmpretrain's ResNet backbone: torchvision's names, no classifier."""
    trunk = _encoder(seed)
    trunk.fc = nn.Identity()
    return trunk


def _ema(network: nn.Module) -> nn.Module:
    """mmengine's ExponentialMovingAverage (CosineEMA): the averaged copy and a step count."""
    ema = nn.Module()
    ema.module = network
    ema.register_buffer("steps", torch.tensor(1000))
    return ema


def _mmpretrain_moco() -> tuple[dict, nn.Module]:
    """mmpretrain's MoCo (``mmpretrain/models/selfsup/moco.py``): ``backbone``, a MoCoV2Neck
    (``neck.mlp``), ``encoder_k``, the EMA of both, the queue; ContrastiveHead has no weights."""
    moco = nn.Module()
    moco.backbone, moco.neck = _openmmlab_trunk(0), nn.Module()
    moco.neck.mlp = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 128))
    moco.encoder_k = _ema(nn.Sequential(_openmmlab_trunk(1), _mlp(512, 512, 128)))
    moco.register_buffer("queue", torch.randn(128, 256))
    moco.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))
    return _openmmlab_checkpoint(moco), moco.backbone


def _mmselfsup_byol() -> tuple[dict, nn.Module]:
    """mmselfsup 0.x's BYOL: ``online_net`` = Sequential(backbone, neck) registered again as
    ``backbone`` and ``neck`` (so its tensors are saved twice), ``target_net``, a predictor head."""
    byol = nn.Module()
    byol.online_net = nn.Sequential(_openmmlab_trunk(0), _mlp(512, 64, 32))
    byol.target_net = nn.Sequential(_openmmlab_trunk(1), _mlp(512, 64, 32))
    byol.backbone, byol.neck = byol.online_net[0], byol.online_net[1]
    byol.head = nn.Module()
    byol.head.predictor = _mlp(32, 64, 32)
    return _openmmlab_checkpoint(byol), byol.backbone


CHECKPOINTS = {
    "moco_v1": (lambda: _moco(mlp=False), "MoCo v1/v2's query encoder (encoder_q)"),
    "moco_v2": (lambda: _moco(mlp=True), "MoCo v1/v2's query encoder (encoder_q)"),
    "moco_v3": (_moco_v3, "MoCo v3's base encoder (base_encoder)"),
    "simsiam": (_simsiam, "SimSiam's encoder (encoder)"),
    "dino": (_dino, "DINO's backbone (backbone); its DINO head and the student network"),
    "barlow_twins": (_barlow_twins, "Barlow Twins's backbone (backbone)"),
    "vicreg": (_vicreg, "VICReg's backbone (backbone)"),
    "swav": (_swav, "SwAV's trunk; its projection head and prototypes"),
    "swav_multi": (lambda: _swav(True), "SwAV's trunk"),
    "vissl": (_vissl, "VISSL's trunk (classy_state_dict.base_model.model.trunk); its heads"),
    "mmpretrain_moco": (_mmpretrain_moco, "OpenMMLab mmselfsup/mmpretrain's backbone (backbone)"),
    "mmselfsup_byol": (_mmselfsup_byol, "its neck, heads and momentum encoders left out"),
}


def _features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return net.forward_head(net.forward_features(x), pre_logits=True)


def _torchvision_features(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    trunk = nn.Sequential(*list(encoder.children())[:-1])  # all but fc
    return torch.flatten(trunk(x), 1)


@pytest.mark.parametrize("method", CHECKPOINTS)
def test_the_kept_network_computes_its_features_and_the_rest_is_named(method, tmp_path):
    build, said = CHECKPOINTS[method]
    checkpoint, network = build()
    path = tmp_path / f"{method}_pretrain.pth.tar"
    torch.save(checkpoint, path)
    net = create_model("resnet50" if method == "vissl" else "resnet18", num_classes=10)
    fresh_fc = net.fc.weight.detach().clone()
    report = load_weights(net, path).describe()
    assert said in report and "left out" in report
    assert "fc is new" in report  # a projection head is never taken for a classifier
    assert torch.equal(net.fc.weight, fresh_fc)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = _torchvision_features(network.eval(), x)
        torch.testing.assert_close(_features(net.eval(), x), expected, rtol=0, atol=1e-5)


def test_a_projection_the_size_of_the_classifier_still_is_not_loaded_as_one(tmp_path):
    checkpoint, _ = _moco(mlp=False)  # encoder_q.fc: 512 -> 128, an embedding
    path = tmp_path / "moco_v1_200ep_pretrain.pth.tar"
    torch.save(checkpoint, path)
    net = create_model("resnet18", num_classes=128)
    assert "fc is new" in load_weights(net, path).describe()


def test_a_method_checkpoint_with_anything_else_is_refused_naming_it(tmp_path):
    checkpoint, _ = _moco(mlp=True)
    checkpoint["state_dict"]["module.memory_bank"] = torch.zeros(4)
    path = tmp_path / "moco.pth.tar"
    torch.save(checkpoint, path)
    with pytest.raises(WeightsError, match="does not fit model resnet18.*unexpected"):
        load_weights(create_model("resnet18"), path)


def test_an_openmmlab_classifier_keeps_its_head_as_the_classifier(tmp_path):
    """mmpretrain's ImageClassifier (``backbone``, a neck without weights, ``head.fc``) is a
    supervised net, not a self-supervised checkpoint: its head is the classifier."""
    classifier = nn.Module()
    classifier.backbone, classifier.head = _openmmlab_trunk(0), nn.Module()
    classifier.head.fc = nn.Linear(512, 10)
    torch.save(_openmmlab_checkpoint(classifier), tmp_path / "resnet18_8xb32_in1k.pth")
    net = create_model("resnet18", num_classes=10)
    assert load_weights(net, tmp_path / "resnet18_8xb32_in1k.pth").describe().endswith("included")
    assert torch.equal(net.fc.weight, classifier.head.fc.weight)
    classifier.neck = _mlp(512, 64, 32)  # a head.fc beside a projection: neither kind, refused
    torch.save(_openmmlab_checkpoint(classifier), tmp_path / "odd.pth")
    with pytest.raises(WeightsError, match="odd.pth does not fit model resnet18"):
        load_weights(create_model("resnet18", num_classes=10), tmp_path / "odd.pth")


def test_a_method_checkpoint_is_a_torchvision_net_not_the_papers_v1():
    encoder = torchvision.models.resnet50(num_classes=128).state_dict()
    state = {f"module.encoder_{q}.{k}": v for q in "qk" for k, v in encoder.items()}
    state |= {"module.queue": torch.randn(128, 8), "module.queue_ptr": torch.zeros(1).long()}
    with torch.device("meta"):
        v1 = create_model("resnet50", stride_in_1x1=True)
    with pytest.raises(WeightsError, match="query encoder.*stride_in_1x1=False and resnet50 has"):
        load_weights(v1, {"state_dict": state})


def test_inspect_names_the_method_and_the_model(tmp_path):
    checkpoint, _ = _moco(mlp=True)
    path = tmp_path / "moco_v2_800ep_pretrain.pth.tar"
    torch.save(checkpoint, path)
    report = inspect_weights(path, "resnet1*")
    assert "MoCo v1/v2's query encoder" in report.kind
    assert "resnet18" in report.fits and report.classes is None
    assert read_weights(path).origin.startswith("MoCo v1/v2's query encoder")


def test_swavs_wide_resnet50_is_resnet50w2_with_its_padding_moved_into_conv1():
    """SwAV's RN50-w2 (SimCLR's ResNet-50 (2x)): torchvision's ResNet code with every width
    doubled; SwAV pads the image by 1 and convolves with padding 2, the same as padding 3."""
    torch.manual_seed(0)
    ours = create_model("resnet50w2", num_classes=10).eval()
    reference = torchvision.models.resnet50(num_classes=10)
    reference.inplanes = 128
    reference.conv1 = nn.Conv2d(3, 128, kernel_size=7, stride=2, padding=2, bias=False)
    reference.bn1 = nn.BatchNorm2d(128)
    for stage, (planes, blocks) in enumerate(zip((128, 256, 512, 1024), (3, 4, 6, 3))):
        layer = reference._make_layer(
            torchvision.models.resnet.Bottleneck, planes, blocks, stride=1 if stage == 0 else 2
        )
        setattr(reference, f"layer{stage + 1}", layer)
    reference.fc = nn.Linear(4096, 10)
    reference.eval().load_state_dict(ours.state_dict())  # strict: the same names and shapes
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = reference(nn.functional.pad(x, (1, 1, 1, 1)))
        torch.testing.assert_close(ours(x), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "name, params_m", [("resnet50w2", 94), ("resnet50w4", 375), ("resnet50w5", 586)]
)
def test_the_wide_resnet50s_have_swavs_parameter_counts(name, params_m):
    with torch.device("meta"):
        net = create_model(name)
    trunk = sum(p.numel() for k, p in net.named_parameters() if not k.startswith("fc."))
    assert round(trunk / 1e6) == params_m


def test_a_moco_checkpoint_is_a_detection_backbone(tmp_path):
    """MoCo's own evaluation: detection on its query encoder (the paper's Table 5)."""
    from resnet.detection.backbone import fpn_backbone

    checkpoint, encoder_q = _moco(mlp=True)
    torch.save(checkpoint, tmp_path / "moco_v2_800ep_pretrain.pth.tar")
    backbone = fpn_backbone("resnet18", weights=tmp_path / "moco_v2_800ep_pretrain.pth.tar")
    state = backbone.state_dict()
    stem = next(v for k, v in state.items() if k.endswith("conv1.weight") and "layer" not in k)
    assert torch.equal(stem, encoder_q.conv1.weight)
