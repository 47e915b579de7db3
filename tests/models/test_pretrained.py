"""load_weights: torchvision files, prefixes, stem adaptation, classifier changes, bad files."""

import pickle

import numpy as np
import pytest
import torch
import torchvision
from safetensors.torch import save_file

from resnet import WeightsError, create_model, load_weights


@pytest.fixture(scope="module")
def torchvision_resnet18_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


def _state(path):
    return torch.load(path, weights_only=True)


def test_torchvision_file_loads_and_matches(torchvision_resnet18_file):
    model = create_model("resnet18")
    report = load_weights(model, torchvision_resnet18_file)
    assert not report.adapted_conv1 and not report.dropped_classifier
    assert report.describe() == "122 tensors loaded; fc included"
    for key, value in _state(torchvision_resnet18_file).items():
        torch.testing.assert_close(model.state_dict()[key], value)


def test_grayscale_stem_sums_the_rgb_filters(torchvision_resnet18_file):
    model = create_model("resnet18", in_chans=1)
    report = load_weights(model, torchvision_resnet18_file)
    rgb = _state(torchvision_resnet18_file)["conv1.weight"]
    assert report.adapted_conv1
    torch.testing.assert_close(model.conv1.weight, rgb.sum(dim=1, keepdim=True))
    # A grey image through the adapted stem equals the same image as RGB through the original.
    grey = torch.rand(1, 1, 32, 32)
    torch.testing.assert_close(
        torch.nn.functional.conv2d(grey, model.conv1.weight, stride=2, padding=3),
        torch.nn.functional.conv2d(grey.repeat(1, 3, 1, 1), rgb, stride=2, padding=3),
    )


def test_four_channel_stem_repeats_and_rescales(torchvision_resnet18_file):
    model = create_model("resnet18", in_chans=4)
    load_weights(model, torchvision_resnet18_file)
    rgb = _state(torchvision_resnet18_file)["conv1.weight"]
    expected = torch.cat([rgb, rgb[:, :1]], dim=1) * 3 / 4
    torch.testing.assert_close(model.conv1.weight, expected)


def test_other_num_classes_drops_the_classifier(torchvision_resnet18_file):
    model = create_model("resnet18", num_classes=7)
    fresh_fc = model.fc.weight.clone()
    report = load_weights(model, torchvision_resnet18_file)
    assert report.dropped_classifier and report.loaded == 120  # 122 less fc.weight and fc.bias
    assert report.describe().endswith(
        "its classifier (another number of classes) left out: fc is new"
    )
    torch.testing.assert_close(model.fc.weight, fresh_fc)
    torch.testing.assert_close(
        model.layer4[1].conv2.weight, _state(torchvision_resnet18_file)["layer4.1.conv2.weight"]
    )


def test_ddp_prefix_and_training_checkpoint_wrapper_are_unwrapped(tmp_path):
    source = create_model("resnet20")
    path = tmp_path / "ckpt.pth"
    torch.save(
        {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path
    )
    target = create_model("resnet20")
    load_weights(target, path)
    torch.testing.assert_close(target.conv1.weight, source.conv1.weight)


def test_timms_training_checkpoint_with_its_argument_namespace_loads(tmp_path):
    """timm's train.py (and DINO, DeiT) save their argparse.Namespace beside the weights: data,
    so it is admitted; the weights are ``state_dict``, not ``state_dict_ema``, as timm's
    ``load_checkpoint`` defaults."""
    import argparse

    source, ema = create_model("resnet20"), create_model("resnet20")
    args = argparse.Namespace(model="resnet20", lr=0.1, input_size=None, mean=(0.5,), amp=True)
    checkpoint = {"epoch": 9, "arch": "resnet20", "state_dict": source.state_dict(), "args": args}
    checkpoint |= {"state_dict_ema": ema.state_dict(), "version": 2, "metric": 91.2}
    torch.save(checkpoint, tmp_path / "model_best.pth.tar")
    target = create_model("resnet20")
    load_weights(target, tmp_path / "model_best.pth.tar")
    torch.testing.assert_close(target.conv1.weight, source.conv1.weight)


def test_a_namespace_does_not_admit_what_it_holds(tmp_path, monkeypatch):
    import argparse

    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(hook=_RunsCode())
    torch.save({"state_dict": create_model("resnet20").state_dict(), "args": args}, "ckpt.pth")
    with pytest.raises(WeightsError, match="ckpt.pth: not a readable weight file"):
        load_weights(create_model("resnet20"), tmp_path / "ckpt.pth")
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("name", ["model", "net"])
def test_a_lightning_checkpoint_loads_without_its_attribute_name(tmp_path, name):
    """A LightningModule saves ``self.model`` as ``state_dict: {"model.conv1.weight": ...}``."""
    source = create_model("resnet20")
    path = tmp_path / "epoch=3-step=100.ckpt"
    state = {f"{name}.{k}": v for k, v in source.state_dict().items()}
    torch.save({"epoch": 3, "global_step": 100, "state_dict": state}, path)
    target = create_model("resnet20")
    assert load_weights(target, path).stripped_prefix == f"{name}."
    torch.testing.assert_close(target.layer3[2].conv2.weight, source.layer3[2].conv2.weight)
    # A second attribute beside the network (a loss's weights) is not guessed away.
    torch.save({"state_dict": {**state, "criterion.weight": torch.ones(10)}}, path)
    with pytest.raises(WeightsError, match=f"unexpected: {name}.conv1.weight"):
        load_weights(create_model("resnet20"), path)


def test_an_openmmlab_checkpoint_loads_backbone_and_head(tmp_path):
    """mmpretrain's ImageNet ResNets: ``backbone.<torchvision name>`` and ``head.fc.*`` under
    ``state_dict``, beside a ``meta`` dict (mmcv names each BN ``bn1``.. as torchvision does)."""
    source = create_model("resnet50")
    state = {
        (f"head.{k}" if k.startswith("fc.") else f"backbone.{k}"): v
        for k, v in source.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    torch.save({"meta": {"epoch": 100}, "state_dict": state}, tmp_path / "resnet50_8xb32.pth")
    target = create_model("resnet50")
    report = load_weights(target, tmp_path / "resnet50_8xb32.pth")
    assert (report.stripped_prefix, report.renamed_classifier) == ("backbone.", "head.fc")
    for key, value in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[key], value, msg=key)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_weights_holding_nan_or_inf_are_refused_naming_the_tensor(tmp_path, bad, suffix):
    """They would load, then make every output NaN: one class for every image."""
    state = create_model("resnet20").state_dict()
    state["layer2.1.bn1.running_var"][3] = bad
    path = tmp_path / f"diverged{suffix}"
    if suffix == ".safetensors":
        save_file(state, path)
    else:
        torch.save(state, path)
    model = create_model("resnet20")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(
        WeightsError, match=r"diverged.*: layer2\.1\.bn1\.running_var holds NaN or inf"
    ):
        load_weights(model, path)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched


def test_a_run_checkpoint_holding_nan_is_refused(tmp_path):
    from resnet.engine.checkpoint import load_checkpoint, save_checkpoint

    model = create_model("resnet20", num_classes=3)
    with torch.no_grad():
        model.fc.weight[0, 0] = float("nan")
    save_checkpoint(tmp_path / "best", model, data_meta=None, epoch=1, step=1, metrics={})
    with pytest.raises(WeightsError, match=r"best\.safetensors: fc\.weight holds NaN"):
        load_checkpoint(tmp_path / "best")


def test_frozen_batch_norm_model_accepts_a_batch_norm_file(torchvision_resnet18_file):
    model = create_model("resnet18", norm_layer="frozen_batch")
    load_weights(model, torchvision_resnet18_file)
    torch.testing.assert_close(
        model.bn1.running_var, _state(torchvision_resnet18_file)["bn1.running_var"]
    )


def test_another_architecture_lists_missing_and_unexpected_keys(torchvision_resnet18_file):
    with pytest.raises(WeightsError, match=r"missing: layer1\.2\.conv1\.weight") as error:
        load_weights(create_model("resnet34"), torchvision_resnet18_file)
    assert "resnet18.pth" in str(error.value)
    with pytest.raises(WeightsError, match="shape mismatch"):
        load_weights(create_model("resnet20"), torchvision_resnet18_file)


def test_safetensors_file_loads(tmp_path):
    source = create_model("resnet20")
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    target = create_model("resnet20")
    load_weights(target, path)
    torch.testing.assert_close(target.fc.weight, source.fc.weight)


def test_corrupt_and_missing_files_raise_weights_error(tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a weight file at all")
    with pytest.raises(WeightsError, match="corrupt.pth"):
        load_weights(create_model("resnet20"), corrupt)
    with pytest.raises(WeightsError, match="not found"):
        load_weights(create_model("resnet20"), tmp_path / "missing.safetensors")


def test_an_npz_that_is_not_bit_is_refused_naming_its_arrays(tmp_path):
    dataset = tmp_path / "images.npz"
    np.savez(dataset, train_images=np.zeros((2, 28, 28), np.uint8), train_labels=np.zeros(2))
    with pytest.raises(WeightsError, match="train_images, train_labels.*--dataset"):
        load_weights(create_model("resnet20"), dataset)
    pickled = tmp_path / "objects.npz"  # never unpickled: .npz arrays of objects can run code
    np.savez(pickled, a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(WeightsError, match="not a readable weight file"):
        load_weights(create_model("resnet20"), pickled)


class _RunsCode:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('x')",))


# torch.load notes that the file's pickle protocol (4) is not its own default: beside the point.
@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_a_weight_file_that_runs_code_is_refused_and_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"conv1.weight": _RunsCode()}))
    with pytest.raises(WeightsError, match="evil.pth"):
        load_weights(create_model("resnet20"), path)
    assert not (tmp_path / "PWNED").exists()


def test_a_state_dict_mapping_loads_like_a_file():
    source = create_model("resnet20")
    target = create_model("resnet20")
    nested = {
        "state_dict_ema": {f"_orig_mod.module.{k}": v for k, v in source.state_dict().items()}
    }
    load_weights(target, nested)
    torch.testing.assert_close(target.layer3[2].conv2.weight, source.layer3[2].conv2.weight)


@pytest.mark.parametrize("name", ["linear", "head.fc", "classifier"])
def test_other_classifier_names_map_onto_fc(name):
    source = create_model("resnet20")
    state = {
        k.replace("fc.", f"{name}.", 1) if k.startswith("fc.") else k: v
        for k, v in source.state_dict().items()
    }
    target = create_model("resnet20")
    report = load_weights(target, state)
    assert report.renamed_classifier == name and not report.backbone_only
    torch.testing.assert_close(target.fc.weight, source.fc.weight, rtol=0, atol=0)


def test_missing_batch_counters_are_tolerated():
    source = create_model("resnet20")
    source.layer1[0].bn1.num_batches_tracked.fill_(7)
    state = {k: v for k, v in source.state_dict().items() if "num_batches_tracked" not in k}
    target = create_model("resnet20")
    load_weights(target, state)
    torch.testing.assert_close(target.layer1[0].bn1.running_var, source.layer1[0].bn1.running_var)
    assert int(target.layer1[0].bn1.num_batches_tracked) == 0  # its own counter, kept


def test_a_backbone_file_keeps_the_fresh_classifier_and_says_so(tmp_path):
    source = create_model("resnet18")
    path = tmp_path / "backbone.pth"
    torch.save({k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}, path)
    target = create_model("resnet18", num_classes=5)
    fresh = target.fc.weight.clone()
    report = load_weights(target, path)
    assert report.backbone_only and not report.dropped_classifier
    torch.testing.assert_close(target.fc.weight, fresh, rtol=0, atol=0)
    torch.testing.assert_close(target.layer4[1].bn2.bias, source.layer4[1].bn2.bias)


def test_a_file_missing_more_than_the_classifier_lists_the_keys():
    state = {k: v for k, v in create_model("resnet20").state_dict().items() if "layer3.2" not in k}
    with pytest.raises(WeightsError, match=r"missing: layer3\.2\.conv1\.weight"):
        load_weights(create_model("resnet20"), state)


def test_wrong_rank_tensors_raise_a_one_line_weights_error(torchvision_resnet18_file):
    # 2-d weights for a 3-d net: every conv has another rank, conv1 included.
    with pytest.raises(WeightsError, match="ranks differ") as error:
        load_weights(create_model("resnet18_3d", in_chans=3), torchvision_resnet18_file)
    assert "\n" not in str(error.value) and "resnet18.pth" in str(error.value)
    state = dict(create_model("resnet20").state_dict())
    state["conv1.weight"] = torch.zeros(16)
    with pytest.raises(WeightsError, match=r"conv1\.weight \(16,\) vs \(16, 3, 3, 3\)"):
        load_weights(create_model("resnet20"), state)
    state["conv1.weight"] = torch.zeros(16, 1, 3, 3, 3)  # another rank and channel count
    with pytest.raises(WeightsError, match="ranks differ"):
        load_weights(create_model("resnet20"), state)


def test_a_mapping_of_non_tensors_is_refused():
    with pytest.raises(WeightsError, match="no state_dict of tensors"):
        load_weights(create_model("resnet20"), {"conv1.weight": [1.0, 2.0]})
