"""evaluate() against a hand computation, and predict() on PNG files plus a broken file."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from engine_helpers import make_npz
from PIL import Image

from resnet.cli import main
from resnet.data import load_dataset, preprocess_images
from resnet.deploy.evaluate import evaluate
from resnet.deploy.optimize import optimize_for_inference
from resnet.deploy.predict import predict
from resnet.engine.checkpoint import save_checkpoint
from resnet.errors import ConfigError, DataError, NoSplitError
from resnet.models import create_model


@pytest.fixture
def checkpoint(tiny_npz, tmp_path):
    """An untrained (but fixed) resnet20 on the bands dataset: its predictions are mixed."""
    torch.manual_seed(1)
    model = create_model("resnet20", num_classes=4, in_chans=1, norm_layer="group")
    meta = load_dataset(str(tiny_npz), "train", val_fraction=0.0).meta
    config = {"dataset": str(tiny_npz), "data_dir": None}
    save_checkpoint(
        tmp_path / "ckpt" / "best", model, data_meta=meta, epoch=1, step=1, metrics={},
        config=config,
    )  # fmt: skip
    return tmp_path / "ckpt", model.eval(), meta


def _by_hand(model, meta, images, labels, flip=False):
    x = (images.float() / 255 - meta.mean[0]) / meta.std[0]
    with torch.no_grad():
        probs = model(x).softmax(1)
        if flip:
            probs = 0.5 * (probs + model(x.flip(-1)).softmax(1))
    return probs, labels


@pytest.mark.parametrize("tta", [False, True])
def test_evaluate_matches_hand_computation(checkpoint, tiny_npz, tmp_path, tta):
    path, model, meta = checkpoint
    test = load_dataset(str(tiny_npz), "test")
    probs, labels = _by_hand(model, meta, test.images, test.labels, flip=tta)
    predicted = probs.argmax(1)
    result = evaluate(path, tta_flip=tta, device="cpu", batch_size=10, out_dir=tmp_path / "out")
    assert result["num_samples"] == len(labels) == 64
    assert result["top1"] == pytest.approx((predicted == labels).float().mean().item())
    top4 = probs.topk(4, 1).indices
    assert result["top5"] == 1.0 and (top4 == labels[:, None]).any(1).all()
    expected = torch.zeros(4, 4, dtype=torch.int64)
    for t, p in zip(labels.tolist(), predicted.tolist()):
        expected[t, p] += 1
    assert result["confusion_matrix"] == expected.tolist()
    for k, name in enumerate(meta.class_names):
        mask = labels == k
        hand = (predicted[mask] == k).float().mean().item()
        assert result["per_class_accuracy"][name] == pytest.approx(hand)
    loss = torch.nn.functional.nll_loss(probs.log(), labels).item()
    assert result["loss"] == pytest.approx(loss, rel=1e-4)
    rows = list(csv.reader((tmp_path / "out" / "confusion_matrix.csv").open()))
    assert rows[0][1:] == meta.class_names and [int(v) for v in rows[1][1:]] == expected[0].tolist()
    assert (tmp_path / "out" / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("classes", [3, 25])
def test_the_confusion_picture_labels_every_nonzero_cell_while_they_fit(
    tmp_path, monkeypatch, classes
):
    from matplotlib.axes import Axes

    from resnet.deploy.evaluate import write_confusion_matrix

    labels = []
    text = Axes.text
    monkeypatch.setattr(
        Axes,
        "text",
        lambda self, x, y, s, **k: labels.append((y, x, s)) or text(self, x, y, s, **k),
    )
    matrix = torch.diag(torch.full((classes,), 50))
    matrix[0, 1], matrix[2, 0] = 7, 1234
    write_confusion_matrix(tmp_path, matrix, [f"c{i}" for i in range(classes)])
    assert (tmp_path / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    cells = {(r, c, str(n)) for (r, c), n in np.ndenumerate(matrix.numpy()) if n}
    assert set(labels) == (cells if classes <= 20 else set())


def test_a_thousand_class_matrix_plots_the_classes_present(tmp_path, monkeypatch):
    """An ImageNet classifier scored on a 3-class folder: 3 rows and an "other classes" column
    in a picture of bounded size (1,000 classes at 0.45 inch each was 45,000 pixels a side)."""
    from matplotlib.axes import Axes
    from PIL import Image

    from resnet.deploy.evaluate import write_confusion_matrix

    cells, ticks = [], []
    text, xticks = Axes.text, Axes.set_xticks
    monkeypatch.setattr(Axes, "text", lambda self, x, y, s, **k: cells.append((y, x, s)) or
                        text(self, x, y, s, **k))  # fmt: skip
    monkeypatch.setattr(Axes, "set_xticks", lambda self, t, labels=None, **k: ticks.append(
                        labels) or xticks(self, t, labels, **k))  # fmt: skip
    names = [f"c{i}" for i in range(1000)]
    matrix = torch.zeros(1000, 1000, dtype=torch.long)
    matrix[5, 5], matrix[5, 900], matrix[17, 5], matrix[600, 600] = 4, 2, 3, 1
    write_confusion_matrix(tmp_path, matrix, names)
    assert ticks == [["c5", "c17", "c600", "other classes"]]
    assert sorted(cells) == [(0, 0, "4"), (0, 3, "2"), (1, 0, "3"), (2, 2, "1")]
    with Image.open(tmp_path / "confusion_matrix.png") as image:
        assert image.size == (400, 400)  # 3 rows + other: the 4-inch minimum at 100 dpi
    rows = (tmp_path / "confusion_matrix.csv").read_text().splitlines()
    assert len(rows) == 1001 and rows[6].split(",")[6] == "4"  # the CSV keeps every class
    ticks.clear()
    full = torch.eye(1000, dtype=torch.long)
    write_confusion_matrix(tmp_path, full, names)  # every class present: capped at 24 inches
    with Image.open(tmp_path / "confusion_matrix.png") as image:
        assert max(image.size) <= 2400
    assert ticks == []  # 1,000 names would not be read


def test_predict_pngs_and_a_broken_file(checkpoint, tiny_npz, tmp_path, capsys):
    path, model, meta = checkpoint
    test = load_dataset(str(tiny_npz), "test")
    files = []
    for i in range(3):
        file = tmp_path / f"image{i}.png"
        Image.fromarray(test.images[i, 0].numpy()).save(file)
        files.append(file)
    broken = tmp_path / "notes.png"
    broken.write_text("this is not an image")
    results = predict(path, [files[0], broken, files[1], files[2]], topk=3, device="cpu")
    assert [r["path"] for r in results] == [str(f) for f in (files[0], broken, files[1], files[2])]
    assert "error" in results[1] and "notes.png" in results[1]["error"]
    assert capsys.readouterr().err == ""  # the library reports in its result; the CLI prints

    probs, _ = _by_hand(model, meta, test.images[:3], test.labels[:3])
    for row, expected in zip([results[0], results[2], results[3]], probs):
        assert len(row["topk"]) == 3
        values, indices = expected.topk(3)
        assert [r["index"] for r in row["topk"]] == indices.tolist()
        assert [r["prob"] for r in row["topk"]] == pytest.approx(values.tolist(), abs=1e-5)
        assert row["label"] == meta.class_names[indices[0]]

    # One path on its own is one input (a str used to be read as one path per letter).
    for single in (str(files[0]), files[0]):
        assert predict(path, single, topk=3, device="cpu") == predict(path, [files[0]], topk=3)

    # The CLI prints JSON for the good files and exits 2 because one failed.
    code = main(["predict", "--checkpoint", str(path), "--json", str(files[0]), str(broken)])
    captured = capsys.readouterr()
    assert code == 2
    assert json.loads(captured.out)[0]["label"] == results[0]["label"]
    assert captured.err.count("resnet: error:") == 1 and str(broken) in captured.err


def test_predict_averages_the_same_test_time_views_as_eval(checkpoint, tiny_npz, tmp_path, capsys):
    """predict had no TTA, so a run scored with --tta labelled images otherwise than its
    reported accuracy; it now averages the mirror and shifted views, as eval does."""
    path, model, meta = checkpoint
    test = load_dataset(str(tiny_npz), "test")
    files = []
    for i in range(4):
        files.append(tmp_path / f"image{i}.png")
        Image.fromarray(test.images[i, 0].numpy()).save(files[-1])
    x = (test.images[:4].float() / 255 - meta.mean[0]) / meta.std[0]
    views = [x, x.flip(-1)]
    for shift in (2, -2):  # reflect-filled copies moved 2 pixels right and left, each mirrored
        padded = torch.nn.functional.pad(x, (2, 2, 0, 0), mode="reflect")
        moved = padded[..., 2 - shift : 2 - shift + x.shape[-1]]
        views += [moved, moved.flip(-1)]
    with torch.no_grad():
        expected = torch.stack([model(view).softmax(1) for view in views]).mean(0)
    rows = predict(path, files, topk=4, device="cpu", tta_flip=True, tta_shift=2)
    for row, probs in zip(rows, expected):
        by_index = {r["index"]: r["prob"] for r in row["topk"]}
        assert [by_index[k] for k in range(4)] == pytest.approx(probs.tolist(), abs=1e-5)
    argv = ["predict", "--checkpoint", str(path), "--json", "--topk", "4", *map(str, files)]
    assert main([*argv, "--tta", "--tta-shift", "2"]) == 0
    assert json.loads(capsys.readouterr().out) == rows
    with pytest.raises(ConfigError, match="tta_flip must be true or false"):
        predict(path, files, device="cpu", tta_flip="false")
    with pytest.raises(ConfigError, match="test-time shift must be a whole number"):
        predict(path, files, device="cpu", tta_shift=16)


def test_predict_takes_folders_and_refuses_a_topk_below_one(checkpoint, tiny_npz, tmp_path):
    path, _, _ = checkpoint
    test = load_dataset(str(tiny_npz), "test")
    for i, name in enumerate(["b/1.png", "a/2.png", "a/3.png"]):
        (tmp_path / "dir" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(test.images[i, 0].numpy()).save(tmp_path / "dir" / name)
    results = predict(path, [tmp_path / "dir"], topk=99, device="cpu")
    in_order = [str(tmp_path / "dir" / name) for name in ("a/2.png", "a/3.png", "b/1.png")]
    assert [r["path"] for r in results] == in_order
    assert all(len(r["topk"]) == 4 for r in results)  # capped at the 4 classes, as timm's
    single = predict(path, [tmp_path / "dir" / "b" / "1.png"], topk=1, device="cpu")
    assert [r["index"] for r in single[0]["topk"]] == [results[2]["topk"][0]["index"]]
    assert single[0]["prob"] == pytest.approx(results[2]["prob"], abs=1e-5)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match="topk must be a whole number >= 1"):
            predict(path, [tmp_path / "dir"], topk=bad, device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: folder holds no files ending in"):
        predict(path, [tmp_path / "empty"], device="cpu")


def test_predict_reads_npy_volumes_for_a_3d_checkpoint(tmp_path):
    from resnet.data import DatasetMeta, preprocess_images

    torch.manual_seed(0)
    model = create_model("resnet10_3d", num_classes=2, in_chans=1, widen_factor=0.125).eval()
    meta = DatasetMeta("vols", ["ball", "cube"], 1, (16, 16, 16), (0.3,), (0.2,))
    save_checkpoint(tmp_path / "vol", model, data_meta=meta, epoch=0, step=0, metrics={})
    volume = np.random.default_rng(0).integers(0, 256, (16, 16, 16), dtype=np.uint8)
    (tmp_path / "scans").mkdir()
    np.save(tmp_path / "scans" / "one.npy", volume)
    (row,) = predict(tmp_path / "vol", [tmp_path / "scans"], topk=2, device="cpu")
    with torch.no_grad():
        expected = model(preprocess_images([volume], meta)).softmax(1)[0]
    assert row["path"] == str(tmp_path / "scans" / "one.npy")
    assert [r["prob"] for r in row["topk"]] == pytest.approx(
        sorted(expected.tolist())[::-1], abs=1e-5
    )


def test_eval_cli_json(checkpoint, capsys):
    path, _, _ = checkpoint
    assert main(["eval", "--checkpoint", str(path), "--json", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "test" and np.array(result["confusion_matrix"]).sum() == 64


def test_evaluate_refuses_data_the_checkpoint_cannot_score(checkpoint, tmp_path, capsys):
    """Every way the split to score can be wrong is a one-line error, in the library and from
    the CLI (exit 2): a validation split the run never held out, a dataset of other classes,
    and a checkpoint that names no dataset without --dataset."""
    path, model, meta = checkpoint
    with pytest.raises(NoSplitError, match=r"no val split and the run held out none"):
        evaluate(path, split="val", device="cpu")
    six = make_npz(tmp_path / "six.npz", num_classes=6)
    with pytest.raises(DataError, match="class.es. band4, band5 that the checkpoint was not"):
        evaluate(path, dataset=str(six), device="cpu")
    assert main(["eval", "--checkpoint", str(path), "--dataset", str(six), "--device", "cpu"]) == 2
    assert "score it on data of those classes" in capsys.readouterr().err
    # Numbered labels are not matched to named classes; the error says how to name them.
    other = _renamed_copy(make_npz(tmp_path / "n.npz"), tmp_path / "n2.npz", ["0", "1", "2", "3"],
                          lambda y: y)  # fmt: skip
    with pytest.raises(DataError, match="name them .a class_names array in the .npz."):
        evaluate(path, dataset=str(other), device="cpu")
    save_checkpoint(tmp_path / "bare" / "best", model, data_meta=None, epoch=1, step=1,
                    metrics={}, config={})  # fmt: skip
    with pytest.raises(ConfigError, match="does not name its dataset; pass --dataset"):
        evaluate(tmp_path / "bare", device="cpu")


def test_a_val_split_of_the_datas_own_is_scored_without_a_val_fraction(
    checkpoint, tiny_npz, tmp_path, write_images
):
    """Data with a val split of its own (``val_*`` arrays in an .npz, a root/val/ folder) is
    scored on it: "the run held out no validation split" was refused though the data had one."""
    path, model, meta = checkpoint
    with np.load(tiny_npz) as arrays:
        saved = {key: arrays[key] for key in arrays.files}
    with_val = tmp_path / "with_val.npz"
    val_images, val_labels = saved["test_images"][:24], saved["test_labels"][:24]
    np.savez(with_val, **saved, val_images=val_images, val_labels=val_labels)
    result = evaluate(path, dataset=str(with_val), split="val", device="cpu")
    val = load_dataset(str(with_val), "val")
    probs, labels = _by_hand(model, meta, val.images, val.labels)
    assert result["num_samples"] == 24 and result["split"] == "val"
    assert result["top1"] == pytest.approx((probs.argmax(1) == labels).float().mean().item())
    for split in ("train", "val"):
        write_images(tmp_path / "photos" / split, classes=("cat", "dog"), per_class=3, size=(8, 8))
    folder = load_dataset(str(tmp_path / "photos"), "train", val_fraction=0.0)
    torch.manual_seed(0)
    two = create_model("resnet20", num_classes=2, norm_layer="group").eval()
    save_checkpoint(tmp_path / "f" / "best", two, data_meta=folder.meta, epoch=1, step=1,
                    metrics={}, config={"dataset": str(tmp_path / "photos")})  # fmt: skip
    assert evaluate(tmp_path / "f", split="val", device="cpu")["num_samples"] == 6


def test_the_train_split_of_a_run_that_held_out_val_is_what_it_trained_on(
    checkpoint, tiny_npz, tmp_path
):
    """`--split train` of a run with val_fraction 0.25 scored all 256 train images, the 64 it
    held out for validation among them; it now scores the 192 it trained on, and val the 64."""
    _, model, meta = checkpoint
    config = {"dataset": str(tiny_npz), "data_dir": None, "val_fraction": 0.25}
    save_checkpoint(tmp_path / "held" / "best", model, data_meta=meta, epoch=1, step=1,
                    metrics={}, config=config)  # fmt: skip
    scored = {split: evaluate(tmp_path / "held", split=split, device="cpu")["num_samples"]
              for split in ("train", "val", "test")}  # fmt: skip
    assert scored == {"train": 192, "val": 64, "test": 64}


def _renamed_copy(source, path, names, relabel):
    with np.load(source) as arrays:
        saved = {key: arrays[key] for key in arrays.files}
    for split in ("train", "test"):
        saved[f"{split}_labels"] = relabel(saved[f"{split}_labels"])
    np.savez(path, **{**saved, "class_names": np.array(names)})
    return path


def test_evaluate_matches_classes_by_name_not_by_index(checkpoint, tiny_npz, tmp_path):
    """The same images with the classes stored in another order score the same; a set of
    other classes of the same count (Fashion-MNIST's model on MNIST) is refused."""
    path, model, meta = checkpoint
    reordered = _renamed_copy(tiny_npz, tmp_path / "r.npz", meta.class_names[::-1], lambda y: 3 - y)
    first = evaluate(path, device="cpu")
    again = evaluate(path, dataset=str(reordered), device="cpu")
    assert again["confusion_matrix"] == first["confusion_matrix"]
    assert again["top1"] == first["top1"] and again["class_names"] == meta.class_names
    other = _renamed_copy(tiny_npz, tmp_path / "o.npz", ["0", "1", "2", "3"], lambda y: y)
    with pytest.raises(DataError, match="class.es. 0, 1, 2, 3 that the checkpoint was not"):
        evaluate(path, dataset=str(other), device="cpu")


def test_a_folder_is_scored_at_the_checkpoints_size_and_statistics(tmp_path, write_images):
    """A folder of other photos of the same classes (larger, other statistics, fewer classes)
    is read as the training folder was: its own median size and mean/std were used before."""
    write_images(tmp_path / "train", classes=("cat", "dog", "fox"), per_class=4, size=(12, 10))
    trained = load_dataset(str(tmp_path / "train"), "train", val_fraction=0.0).meta
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=3, norm_layer="group").eval()
    config = {"dataset": str(tmp_path / "train")}
    save_checkpoint(tmp_path / "ckpt" / "best", model, data_meta=trained, epoch=1, step=1,
                    metrics={}, config=config)  # fmt: skip
    photos = write_images(tmp_path / "new", classes=("dog", "fox"), per_class=5, size=(40, 30))
    result = evaluate(tmp_path / "ckpt", dataset=str(tmp_path / "new"), device="cpu")
    with torch.no_grad():
        logits = model(preprocess_images([p for p, _ in photos], trained))
    labels = torch.tensor([label + 1 for _, label in photos])  # dog, fox: 1, 2 in training
    assert result["top1"] == pytest.approx((logits.argmax(1) == labels).float().mean().item())
    assert result["num_samples"] == 10 and result["per_class_accuracy"]["cat"] is None
    assert result["split"] == "all"  # a plain folder of new photos is scored whole


def test_a_class_with_a_slash_is_found_as_its_folder_name(tmp_path, write_images):
    """Fashion-MNIST's "T-shirt/top" can be no folder's name: a folder of such photos could
    not be scored by any name (T-shirt_top, T-shirt top: 'not trained on')."""
    import dataclasses

    write_images(tmp_path / "train", classes=("a", "b", "c"), per_class=2, size=(12, 10))
    trained = load_dataset(str(tmp_path / "train"), "train", val_fraction=0.0).meta
    trained = dataclasses.replace(trained, class_names=["T-shirt/top", "Trouser", "Bag"])
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=3, norm_layer="group").eval()
    save_checkpoint(tmp_path / "ckpt" / "best", model, data_meta=trained, epoch=1, step=1,
                    metrics={})  # fmt: skip
    photos = write_images(tmp_path / "new", classes=("Bag", "T-shirt_top"), per_class=3)
    result = evaluate(tmp_path / "ckpt", dataset=str(tmp_path / "new"), device="cpu")
    with torch.no_grad():
        logits = model(preprocess_images([p for p, _ in photos], trained))
    labels = torch.tensor([(2, 0)[label] for _, label in photos])  # Bag 2, T-shirt/top 0
    assert result["top1"] == pytest.approx((logits.argmax(1) == labels).float().mean().item())
    assert result["per_class_accuracy"]["Trouser"] is None
    assert result["per_class_accuracy"]["T-shirt/top"] is not None


def test_evaluate_in_bfloat16_scores_the_16_bit_network(checkpoint, tiny_npz):
    path, model, meta = checkpoint
    test = load_dataset(str(tiny_npz), "test")
    x = (test.images.float() / 255 - meta.mean[0]) / meta.std[0]
    half = optimize_for_inference(model, dtype=torch.bfloat16)
    with torch.no_grad():
        logits, logits32 = half(x), model(x)
    loss = torch.nn.functional.cross_entropy(logits, test.labels).item()
    loss32 = torch.nn.functional.cross_entropy(logits32, test.labels).item()
    assert abs(loss - loss32) > 1e-5  # bfloat16 rounding shows in the loss
    result = evaluate(path, device="cpu", batch_size=10, dtype="bfloat16")
    assert result["dtype"] == "bfloat16"
    assert result["loss"] == pytest.approx(loss, rel=1e-6, abs=0)
    predicted = logits.argmax(1)
    assert result["top1"] == pytest.approx((predicted == test.labels).float().mean().item())
    with pytest.raises(ConfigError, match="bfloat16"):
        evaluate(path, device="cpu", dtype="int8")


def test_one_evaluation_loop_is_exact_for_huge_logits_and_averages_flips():
    """The loop the engine, eval and the experiments share: cross-entropy of float64
    log-softmax (a loss-landscape point with logits of 1000 has loss 1000, not a clamped 27.6),
    and with TTA the loss of the averaged probabilities of an image and its mirror image."""
    from torch import nn

    from resnet.engine.evaluate import evaluate_loader

    class Fixed(nn.Module):
        def forward(self, x):  # (B, 1, 1, 2) -> logits (B, 2): the last pixel row as logits
            return x[:, 0, 0, :] * 1.0

    x = torch.tensor([[[[1000.0, 0.0]]], [[[0.0, 3.0]]]])
    y = torch.tensor([1, 1])
    scores = evaluate_loader(Fixed(), [(x, y)])
    assert scores["loss"] == pytest.approx(
        (1000.0 + float(torch.log1p(torch.exp(torch.tensor(-3.0))))) / 2
    )
    assert scores["top1"] == 0.5 and scores["confusion_matrix"].tolist() == [[0, 0], [1, 1]]
    flipped = evaluate_loader(Fixed(), [(x, y)], tta_flip=True)
    logits = x[:, 0, 0].double()
    probs = 0.5 * (torch.softmax(logits, 1) + torch.softmax(logits.flip(-1), 1))
    expected = float(-probs[torch.arange(2), y].log().mean())
    assert flipped["loss"] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("shift", [1, 2, 5])
@pytest.mark.parametrize("dims", [4, 5])  # images and volumes: both shift along the width
def test_a_shifted_view_is_reflect_padding_and_a_crop(shift, dims):
    from resnet.engine.evaluate import shift_width

    x = torch.randn(2, 3, *(4, 5, 6)[5 - dims :])
    pad = [(0, 0)] * (dims - 1)
    right = np.pad(x.numpy(), pad + [(shift, 0)], mode="reflect")[..., : x.shape[-1]]
    left = np.pad(x.numpy(), pad + [(0, shift)], mode="reflect")[..., shift:]
    assert np.array_equal(shift_width(x, shift).numpy(), right)
    assert np.array_equal(shift_width(x, -shift).numpy(), left)


@pytest.mark.parametrize("flip", [False, True])
def test_shift_tta_averages_the_probabilities_of_every_view(flip):
    """eval_tta_shift: the image, its copies shifted left and right, and (with flip) the mirror
    of each; a model that reads position (a linear layer) gives every view other logits."""
    from torch import nn

    from resnet.engine.evaluate import evaluate_loader, tta_view_count

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 5 * 7, 3))
    x, y = torch.randn(8, 2, 5, 7), torch.randint(0, 3, (8,))
    scores = evaluate_loader(model, [(x[:5], y[:5]), (x[5:], y[5:])], tta_flip=flip, tta_shift=2)
    pad = [(0, 0)] * 3
    views = [
        x,
        torch.from_numpy(np.pad(x.numpy(), pad + [(2, 0)], mode="reflect")[..., :7]),
        torch.from_numpy(np.pad(x.numpy(), pad + [(0, 2)], mode="reflect")[..., 2:]),
    ]
    views += [view.flip(-1) for view in views] if flip else []
    assert len(views) == tta_view_count(flip=flip, shift=2) == (6 if flip else 3)
    with torch.no_grad():
        probs = torch.stack([model(v).double().softmax(1) for v in views]).mean(0)
    assert scores["loss"] == pytest.approx(float(-probs[torch.arange(8), y].log().mean()), rel=1e-6)
    assert scores["top1"] == pytest.approx(float((probs.argmax(1) == y).double().mean()))


def test_a_shift_as_wide_as_the_image_is_refused_before_training(checkpoint, tiny_npz, tmp_path):
    """A shift must leave a column of the image: refused by the library (ConfigError), by
    `resnet eval --tta-shift` (exit 2, one line) and by train before the first step."""
    from engine_helpers import tiny_config

    from resnet.engine.evaluate import check_tta_shift
    from resnet.engine.train import train

    path, _, _ = checkpoint
    width = load_dataset(str(tiny_npz), "test").meta.image_size[-1]
    check_tta_shift(width - 1, width)
    for bad in (width, -1, 1.5):  # 1.5 failed inside a slice with a TypeError
        with pytest.raises(ConfigError, match=rf"width - 1 \({width - 1}\), got {bad}"):
            check_tta_shift(bad, width)
    with pytest.raises(ConfigError, match="lower eval_tta_shift"):
        evaluate(path, tta_shift=width, device="cpu")
    assert main(["eval", "--checkpoint", str(path), "--tta-shift", "-1", "--device", "cpu"]) == 2
    with pytest.raises(ConfigError, match="lower eval_tta_shift"):
        train(tiny_config(tiny_npz, tmp_path / "runs", eval_tta_shift=width))
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*.safetensors"))


def test_train_scores_its_final_model_with_the_shifted_views(tiny_npz, tmp_path):
    """eval_tta_shift alone (no flip) still scores the final model after training, and that
    score is what `resnet eval --tta-shift` gives for the same weights."""
    from engine_helpers import tiny_config

    from resnet.engine.train import train

    result = train(tiny_config(tiny_npz, tmp_path, epochs=1, eval_tta_shift=1))
    plain = result.history[-1]["test_loss"]
    scored = evaluate(result.last_checkpoint, tta_shift=1, device="cpu")
    assert result.metrics["test_loss"] == pytest.approx(scored["loss"], rel=1e-6) != plain
    assert result.metrics["test_acc"] == pytest.approx(scored["top1"])
    assert scored["tta_shift"] == 1


def test_mirrored_views_are_refused_for_digits(tmp_path):
    """MNIST trains without flips (a mirrored digit is another shape), so flip TTA, in a
    config or in `resnet eval --tta`, would score views the model never learned: refused
    before any training; the translate TTA stays allowed."""
    from engine_helpers import tiny_config

    from resnet.data import write_idx
    from resnet.data.idx import IDX_FILES
    from resnet.engine.train import train

    rng = np.random.default_rng(0)
    for split, n in (("train", 64), ("test", 16)):
        images_name, labels_name = IDX_FILES[split]
        write_idx(tmp_path / "mnist" / images_name, rng.integers(0, 256, (n, 8, 8), np.uint8))
        write_idx(tmp_path / "mnist" / labels_name, np.arange(n, dtype=np.uint8) % 10)
    config = tiny_config("mnist", tmp_path / "runs", data_dir=str(tmp_path / "mnist"), epochs=1)
    with pytest.raises(ConfigError, match="mnist trains without mirror images.*drop --tta"):
        train({**config, "eval_tta": True})
    assert not (tmp_path / "runs").exists()
    result = train({**config, "eval_tta_shift": 1, "max_steps": 1})
    with pytest.raises(ConfigError, match="mnist trains without mirror images"):
        evaluate(result.run_dir, tta_flip=True, device="cpu")
    assert evaluate(result.run_dir, tta_shift=1, device="cpu")["num_samples"] == 16


def test_arrays_of_another_size_are_scored_at_the_checkpoints_size(checkpoint, tmp_path):
    """Arrays of another size used to run through the network as they were (global pooling
    takes any size); they are resized to the checkpoint's size as ``image_size`` resized its
    training arrays: the score is the network's on torchvision's ``Resize`` of each image."""
    import torchvision.transforms.functional as TF

    path, model, meta = checkpoint
    bigger = make_npz(tmp_path / "bigger.npz", num_classes=4, size=20)
    result = evaluate(path, dataset=str(bigger), device="cpu")
    with np.load(bigger) as arrays:
        images, labels = arrays["test_images"], torch.from_numpy(arrays["test_labels"])
    side = meta.image_size[0]
    resized = torch.stack(
        [TF.pil_to_tensor(TF.resize(Image.fromarray(image), [side, side])) for image in images]
    )
    predicted = _by_hand(model, meta, resized, labels)[0].argmax(1)
    assert result["top1"] == pytest.approx((predicted == labels).float().mean().item())
    expected = torch.zeros(4, 4, dtype=torch.int64)
    expected.index_put_((labels, predicted), torch.ones_like(labels), accumulate=True)
    assert result["confusion_matrix"] == expected.tolist()
