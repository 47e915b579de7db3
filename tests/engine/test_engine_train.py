"""Training runs on tiny synthetic data and a short real Fashion-MNIST run."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from engine_helpers import make_npz, tiny_config
from safetensors.torch import load_file

from resnet.data import ArrayDataset, DatasetMeta
from resnet.engine.checkpoint import load_checkpoint
from resnet.engine.train import NonFiniteLossError, train
from resnet.errors import ConfigError, DataError


def test_run_directory_layout(tiny_npz, tmp_path):
    result = train(tiny_config(tiny_npz, tmp_path / "runs", nesterov=True, no_wd_norm_bias=True))
    run = tmp_path / "runs" / "tiny"
    assert result.run_dir == run
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "metrics.csv", "results.json", "last.state.pt"} <= names
    assert {f"{s}.{e}" for s in ("best", "last") for e in ("json", "safetensors")} <= names
    assert yaml.safe_load((run / "config.yaml").read_text())["nesterov"] is True
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3] and int(rows[-1]["step"]) == 24
    assert set(rows[0]) == {
        "epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc",
        "lr", "images_per_s", "seconds",
    }  # fmt: skip
    # The bands are easy: the net must learn them.
    assert result.metrics["test_acc"] > 0.9
    assert float(rows[-1]["test_acc"]) == pytest.approx(result.metrics["test_acc"])
    _, info = load_checkpoint(run / "last")
    assert info["epoch"] == 3 and info["data_meta"]["class_names"][0] == "band0"
    # A second run with the same name is numbered.
    again = train(tiny_config(tiny_npz, tmp_path / "runs", epochs=1, max_steps=2))
    assert again.run_dir == tmp_path / "runs" / "tiny-2" and again.history[-1]["step"] == 2


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tiny_npz, tmp_path):
    train(tiny_config(tiny_npz, tmp_path, epochs=1))
    run = tmp_path / "tiny"
    good = (run / "last.safetensors").read_bytes()
    # Weight decay x lr = 1e4: the weights grow 10^4-fold per step until they overflow.
    with pytest.raises(NonFiniteLossError, match=r"NaN/inf at step \d+ \(epoch 2"):
        train({"epochs": 3, "lr": 1e4, "weight_decay": 1.0, "schedule": "constant"}, resume=run)
    assert (run / "last.safetensors").read_bytes() == good
    assert load_checkpoint(run)[1]["epoch"] == 1


def test_transfer_learning_freezes_the_backbone(tmp_path, capsys):
    source = make_npz(tmp_path / "source.npz", num_classes=4, seed=1)
    target = make_npz(tmp_path / "target.npz", num_classes=2, seed=2)
    base = train(tiny_config(source, tmp_path, name="base", epochs=1, model_kwargs={}))
    pretrained = load_file(str(base.best_checkpoint))
    tuned = train(
        tiny_config(
            target, tmp_path, name="tuned", epochs=1, pretrained=str(base.run_dir), model_kwargs={},
            freeze_stages=1, backbone_lr_scale=0.1,
        )
    )  # fmt: skip
    # The run says what the file gave: the 4-class head does not fit 2 classes, so fc is new.
    printed = capsys.readouterr().out
    assert f"pretrained {base.run_dir}: " in printed and "left out: fc is new" in printed
    weights = load_file(str(tuned.last_checkpoint))
    frozen = [k for k in weights if k.startswith(("conv1.", "bn1.", "layer1."))]
    assert "layer1.0.bn1.running_mean" in frozen
    for key in frozen:  # parameters and BN statistics of the frozen part are untouched
        assert torch.equal(weights[key], pretrained[key]), key
    assert not torch.equal(weights["layer3.0.conv1.weight"], pretrained["layer3.0.conv1.weight"])
    assert weights["fc.weight"].shape == (2, 64) and pretrained["fc.weight"].shape == (4, 64)
    # freeze_bn keeps every running statistic, even of trained stages.
    still = train(
        tiny_config(target, tmp_path, name="bn", epochs=1, pretrained=str(base.best_checkpoint),
                    model_kwargs={},
                    freeze_bn=True)
    )  # fmt: skip
    weights = load_file(str(still.last_checkpoint))
    assert torch.equal(weights["layer3.2.bn2.running_var"], pretrained["layer3.2.bn2.running_var"])
    assert not torch.equal(weights["layer3.2.bn2.weight"], pretrained["layer3.2.bn2.weight"])


FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_real_fashion_mnist_short_run(tmp_path):
    # 4000 images, 2 epochs of batch 64 (126 steps): well above the 10% of chance.
    result = train(
        {
            "model": "resnet20", "dataset": "fashion-mnist", "data_dir": str(FASHION),
            "train_subset": 4000, "eval_subset": 1000, "epochs": 2, "batch_size": 64,
            "lr": 0.1, "schedule": "onecycle", "nesterov": True, "label_smoothing": 0.1,
            "pad": 2, "channels_last": True, "runs_dir": str(tmp_path), "progress": False,
            "log_tensorboard": False, "device": "cpu",
        }
    )  # fmt: skip
    assert result.history[-1]["test_acc"] > 0.7
    assert result.metrics["test_acc"] > 0.7  # the full 10k test split


def test_a_warmup_or_milestone_the_run_never_reaches_is_pointed_out(tiny_npz, tmp_path, capsys):
    """`--epochs 1` on a recipe with a longer warmup still runs (a quick try), but says that
    its lr never anneals; a warmup shorter than the run says nothing."""
    result = train(tiny_config(tiny_npz, tmp_path, epochs=1, warmup_epochs=1.5, max_steps=2))
    out = capsys.readouterr().out
    assert "note: warmup_epochs 1.5 is not shorter than the run's 1 epochs" in out
    assert result.history[-1]["lr"] < 0.05  # still rising: 2 steps of a 1.5-epoch warmup
    train(tiny_config(tiny_npz, tmp_path, epochs=2, warmup_epochs=1.5, max_steps=2))
    assert "warmup_epochs" not in capsys.readouterr().out
    # A step milestone past the run's end (here step 5 of a 2-step run) never drops the lr.
    step = {"schedule": "step", "milestones_unit": "steps", "max_steps": 2}
    train(tiny_config(tiny_npz, tmp_path, epochs=2, milestones=[1, 5], **step))
    assert "note: milestone(s) 5 (steps) lie at or past the run's end (step 2)" in (
        capsys.readouterr().out
    )
    train(tiny_config(tiny_npz, tmp_path, epochs=2, milestones=[1], **step))
    assert "note: milestone" not in capsys.readouterr().out


@pytest.mark.parametrize("source", ["npz", "folder"])
def test_one_class_is_refused_before_the_run_folder(source, tmp_path, write_images):
    """One class trains to loss 0 and 100% accuracy in a step, a result that means nothing."""
    if source == "npz":
        dataset = make_npz(tmp_path / "one.npz", num_classes=1, train=32, test=8)
    else:
        dataset = tmp_path / "photos"
        write_images(dataset, classes=("cat",), per_class=4)
    with pytest.raises(DataError, match=r"has 1 class\(es\) .*a classifier needs at least 2"):
        train(tiny_config(dataset, tmp_path / "runs", epochs=1))
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("source", ["folder", "given"])
def test_a_train_split_of_one_present_class_is_refused(source, tmp_path, write_images):
    """Two classes named, one with images: the 'dog' folder holds only files that are not
    images (skipped with a warning), so the run would learn 'cat' and score 100%."""
    if source == "folder":
        dataset = tmp_path / "photos"
        write_images(dataset, classes=("cat",), per_class=6)
        (dataset / "dog").mkdir()
        for i in range(6):
            (dataset / "dog" / f"{i}.jpg").write_text("an HEIC photo renamed .jpg")
        one_class = pytest.raises(DataError, match=r"images of one class only \('cat'\) of its 2")
        with pytest.warns(UserWarning, match="unreadable"), one_class:
            train(tiny_config(dataset, tmp_path / "runs", epochs=1))
    else:
        meta = DatasetMeta("cats", ["cat", "dog"], 1, (8, 8), (0.5,), (0.25,))
        cats = ArrayDataset(
            torch.zeros(16, 1, 8, 8, dtype=torch.uint8), torch.zeros(16).long(), meta
        )
        config = tiny_config(tmp_path / "unused.npz", tmp_path / "runs", epochs=1)
        with pytest.raises(DataError, match="images of one class only"):
            train(config, datasets={"train": cats, "test": cats})
    assert not (tmp_path / "runs").exists()


def test_per_iteration_curve_adds_up_to_the_epoch_rows(tiny_npz, tmp_path):
    """``curve_every``: the training rows of every N steps (the paper's Fig. 6 x-axis). With N
    steps per window, the windows of an epoch average to that epoch's row."""
    result = train(tiny_config(tiny_npz, tmp_path, epochs=2, curve_every=2))
    steps_per_epoch = result.history[0]["step"]
    assert [r["step"] for r in result.curve] == list(range(2, 2 * steps_per_epoch + 1, 2))
    for epoch, row in enumerate(result.history):
        windows = result.curve[epoch * steps_per_epoch // 2 : (epoch + 1) * steps_per_epoch // 2]
        seen = sum(w["images"] for w in windows)
        mean_loss = sum(w["train_loss"] * w["images"] for w in windows) / seen
        assert mean_loss == pytest.approx(row["train_loss"], rel=1e-9)
    lines = (result.run_dir / "curve.csv").read_text().splitlines()
    assert lines[0].startswith("step,train_loss,train_acc") and len(lines) == len(result.curve) + 1


def test_deterministic_runs_skip_the_nan_filling_and_train_restores_the_flags(tiny_npz, tmp_path):
    """``deterministic`` turns torch's deterministic kernels on for the run, without its
    NaN-filling of fresh memory (a debugging aid that only costs time), and ``train`` puts
    both flags back as it found them."""
    import torch.utils.deterministic as determinism

    from resnet.engine.setup import seed_everything

    def flags():
        return torch.are_deterministic_algorithms_enabled(), determinism.fill_uninitialized_memory

    before = flags()
    try:
        seed_everything(0, deterministic=True)
        assert flags() == (True, False)
    finally:
        torch.use_deterministic_algorithms(before[0])
        determinism.fill_uninitialized_memory = before[1]
    train(tiny_config(tiny_npz, tmp_path, epochs=1, max_steps=2))
    assert flags() == before


def test_whitened_stem_comes_from_the_first_training_images(tiny_npz, tmp_path, monkeypatch):
    from resnet.models.fast import ResNet9
    from resnet.models.whitening import patch_whitening_filters

    seen: dict[str, list] = {"whitened": [], "trained": []}
    whiten, stem = ResNet9.whiten_stem, ResNet9.forward_stem

    def spy_whiten(model, images, **kwargs):
        seen["whitened"].append(images.clone())
        whiten(model, images, **kwargs)

    def spy_stem(model, x):
        if model.training:
            seen["trained"].append(x.clone())
        return stem(model, x)

    monkeypatch.setattr(ResNet9, "whiten_stem", spy_whiten)
    monkeypatch.setattr(ResNet9, "forward_stem", spy_stem)
    options = {"model": "resnet9_slim", "model_kwargs": {"whitened_stem": True}, "epochs": 1}
    first = train(tiny_config(tiny_npz, tmp_path, name="first", **options))
    (images,) = seen["whitened"]
    assert len(images) == 256  # the whole tiny train split: fewer than WHITENING_IMAGES
    # The images of epoch 0, as the first step sees them (augmented, normalised).
    torch.testing.assert_close(images[:32], seen["trained"][0])
    weights = load_file(str(first.last_checkpoint))
    torch.testing.assert_close(weights["conv1.weight"], patch_whitening_filters(images))
    assert weights["conv1.bias"].abs().sum() > 0  # the bias learns; the filters stay fixed

    # A pretrained (or resumed) model keeps the stem it was trained with.
    seen["whitened"].clear()
    tuned = train(tiny_config(tiny_npz, tmp_path, name="tuned", pretrained=str(first.run_dir),
                              **options))  # fmt: skip
    assert seen["whitened"] == []
    tuned_weights = load_file(str(tuned.last_checkpoint))
    assert torch.equal(tuned_weights["conv1.weight"], weights["conv1.weight"])


@pytest.mark.filterwarnings("ignore:.*has no test/ folder")
def test_whitened_stem_on_an_image_folder(tmp_path, write_images):
    """RGB images decoded by worker processes: 54 filters from the folder's first images, and
    leaving the loader after a few batches leaves no worker behind."""
    write_images(tmp_path / "shapes", ("a", "b"), per_class=12, size=(16, 16))
    config = tiny_config(
        tmp_path / "shapes", tmp_path, model="resnet9_slim", model_kwargs={"whitened_stem": True},
        epochs=1, batch_size=8, image_size=16, num_workers=1, max_steps=2, val_fraction=0.25,
    )  # fmt: skip
    result = train(config)
    weights = load_file(str(result.last_checkpoint))
    assert weights["conv1.weight"].shape == (54, 3, 3, 3)
    flat = weights["conv1.weight"][:27].flatten(1).double()
    assert torch.linalg.matrix_rank(flat) == 27  # a whitening basis, not a random init's copy
    assert torch.equal(weights["conv1.weight"][27:], -weights["conv1.weight"][:27])


def test_engine_whitening_needs_a_training_batch():
    from resnet.engine.setup import init_from_data
    from resnet.errors import DataError
    from resnet.models import create_model

    model = create_model("resnet9_slim", num_classes=10, in_chans=1, whitened_stem=True)
    with pytest.raises(DataError, match="no batch to whiten the stem from"):
        init_from_data(model, [])
    plain = create_model("resnet9_slim", num_classes=10, in_chans=1)
    init_from_data(plain, [])  # nothing to whiten: a no-op, whatever the loader


def test_a_train_subset_beyond_the_split_or_of_one_class_is_refused(tmp_path):
    """train_subset 100000 of 256 images used to train on all 256 while config.yaml said 100000;
    a train_subset of one class (of the 4 named) is refused. The first 50 of an .npz stored class
    by class held one class; such data is now spread (tests/data: test_a_subset_of_arrays_...)."""
    with pytest.raises(ConfigError, match="train_subset 100000 is more than the 256 images"):
        train(tiny_config(make_npz(tmp_path / "d.npz"), tmp_path / "runs", train_subset=100000))
    with np.load(make_npz(tmp_path / "d.npz")) as arrays:
        saved = dict(arrays)
    one_class = tmp_path / "one.npz"
    first_zero = saved["train_labels"].copy()
    first_zero[:200] = 0  # shuffled after that: not stored class by class, so the first 50 stay
    np.savez(one_class, **{**saved, "train_labels": first_zero})
    with pytest.raises(DataError, match=r"\(train_subset 50\): the train split holds .* one class"):
        train(tiny_config(one_class, tmp_path / "runs", train_subset=50))
    assert not (tmp_path / "runs").exists()


def test_epochs_are_scored_on_the_datas_own_val_split_and_best_is_never_picked_on_test(tmp_path):
    """An .npz with val arrays (MedMNIST's layout) was scored every epoch on test when
    val_fraction was 0, and best.* was the epoch with the best *test* accuracy: `resnet eval` of
    the run then reported a test score chosen on the test set, above the run's "final:". Epochs
    are now scored on the data's own val split; without any val split best.* is the latest
    epoch, the model "final:" scores."""
    with np.load(make_npz(tmp_path / "d.npz")) as arrays:
        saved = dict(arrays)
    with_val = tmp_path / "with_val.npz"
    np.savez(with_val, **saved, val_images=saved["test_images"][:32],
             val_labels=saved["test_labels"][:32])  # fmt: skip
    result = train(tiny_config(with_val, tmp_path / "runs", name="v", lr=0.5))
    assert all("val_acc" in row and "test_acc" not in row for row in result.history)
    best = json.loads((result.run_dir / "best.json").read_text())
    picked = max(result.history, key=lambda row: row["val_acc"])
    assert best["epoch"] == picked["epoch"] and "test_acc" in result.metrics
    # A constant lr of 4 makes the test accuracy jump about: epoch 3 is the best on test.
    plain = train(tiny_config(tmp_path / "d.npz", tmp_path / "runs", name="t", lr=4.0, epochs=4,
                              schedule="constant"))  # fmt: skip
    accuracy = [row["test_acc"] for row in plain.history]
    assert max(accuracy) > accuracy[-1]  # so best-on-test would have kept an earlier epoch
    assert json.loads((plain.run_dir / "best.json").read_text())["epoch"] == 4
    assert (plain.run_dir / "best.safetensors").read_bytes() == (
        plain.run_dir / "last.safetensors"
    ).read_bytes()


def test_fine_tuning_options_without_pretrained_weights_are_pointed_out(tiny_npz, tmp_path):
    """--freeze-stages 2 with no --pretrained trained on random frozen stages, silently."""
    config = tiny_config(tiny_npz, tmp_path, epochs=1, max_steps=1, freeze_stages=1)
    with pytest.warns(UserWarning, match=r"freeze_stages 1 \(random stages that never learn\)"):
        train(config)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a plain run warns of nothing
        train(tiny_config(tiny_npz, tmp_path, epochs=1, max_steps=1))


def test_arrays_trained_at_another_size_score_and_predict_at_it(tiny_npz, tmp_path):
    """``image_size`` on arrays: the run trains on the resized images and records the size;
    eval of the checkpoint on the same arrays resizes them as training did (the same test
    accuracy), and predict on one test image saved as a PNG sees the same pixels."""
    from PIL import Image

    from resnet.data import load_dataset
    from resnet.deploy.evaluate import evaluate
    from resnet.deploy.predict import predict

    result = train(tiny_config(tiny_npz, tmp_path / "runs", image_size=24, epochs=1))
    _, info = load_checkpoint(result.run_dir / "last")
    assert tuple(info["data_meta"]["image_size"]) == (24, 24)
    assert yaml.safe_load((result.run_dir / "config.yaml").read_text())["image_size"] == 24
    scored = evaluate(result.run_dir / "last", device="cpu")
    assert scored["top1"] == pytest.approx(result.metrics["test_acc"])
    original = load_dataset(str(tiny_npz), "test").images[0, 0].numpy()
    Image.fromarray(original).save(tmp_path / "one.png")
    resized = load_dataset(str(tiny_npz), "test", image_size=24).images[0, 0].numpy()
    Image.fromarray(resized).save(tmp_path / "one_at_24.png")
    rows = predict(result.run_dir / "last", [tmp_path / "one.png", tmp_path / "one_at_24.png"],
                   device="cpu")  # fmt: skip
    assert rows[0]["topk"] == rows[1]["topk"]
