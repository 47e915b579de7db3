"""Image folders: class scanning, corrupt files, seeded and folder splits, the DataLoader path."""

import unicodedata
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from resnet.data import (
    ImageFolderDataset,
    as_trained,
    load_dataset,
    make_loader,
    preprocess_images,
)
from resnet.errors import ConfigError, DataError


@pytest.fixture
def folder(tmp_path, write_images):
    root = tmp_path / "pets"
    paths = write_images(root)
    corrupt = root / "cat" / "broken.png"
    corrupt.write_bytes(b"\x89PNG but not really")
    (root / "cat" / "notes.txt").write_text("ignored: not an image extension")
    return root, paths, corrupt


def test_corrupt_image_is_reported_not_fatal(folder):
    root, paths, corrupt = folder
    with pytest.warns(UserWarning, match="broken.png"):
        train = load_dataset(str(root), "train", image_size=8, val_fraction=0.25)
    with pytest.warns(UserWarning, match="broken.png"):
        val = load_dataset(str(root), "val", image_size=8, val_fraction=0.25)
    assert isinstance(train, ImageFolderDataset)
    assert corrupt in train.unreadable
    assert sorted(train.samples + val.samples) == sorted(paths)  # 12 images, corrupt one left out
    assert (len(train), len(val)) == (9, 3)
    assert train.meta.class_names == ["cat", "dog"]
    assert train.meta.channels == 3 and train.meta.image_size == (8, 8)


def test_seeded_split_is_reproducible(folder):
    root = folder[0]
    with pytest.warns(UserWarning):
        a = load_dataset(str(root), "val", image_size=8, seed=5, val_fraction=0.5)
        b = load_dataset(str(root), "val", image_size=8, seed=5, val_fraction=0.5)
        c = load_dataset(str(root), "val", image_size=8, seed=6, val_fraction=0.5)
    assert a.samples == b.samples and a.samples != c.samples
    with pytest.warns(UserWarning), pytest.raises(ConfigError, match="val_fraction"):
        load_dataset(str(root), "val", image_size=8, val_fraction=0.0)


def test_mean_std_are_computed_at_the_target_size(folder):
    root = folder[0]
    with pytest.warns(UserWarning):
        train = load_dataset(str(root), "train", image_size=8, val_fraction=0.0)
    pixels = torch.stack([train[i][0] for i in range(len(train))]).double() / 255
    assert pixels.shape == (12, 3, 8, 8)
    torch.testing.assert_close(
        torch.tensor(train.meta.mean, dtype=torch.float64), pixels.mean(dim=(0, 2, 3))
    )
    torch.testing.assert_close(
        torch.tensor(train.meta.std, dtype=torch.float64), pixels.std(dim=(0, 2, 3), unbiased=False)
    )


def test_split_by_folders_and_gray_detection(tmp_path):
    root = tmp_path / "xray"
    for split, n in (("train", 4), ("val", 2)):
        for name in ("normal", "pneumonia"):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                Image.new("L", (10, 12), 40 * i).save(root / split / name / f"{i}.png")
    train = load_dataset(str(root), "train", image_size=6)
    val = load_dataset(str(root), "val", image_size=6)
    assert (len(train), len(val)) == (8, 4)
    assert all(p.parent.parent.name == "val" for p, _ in val.samples)
    assert train.meta.channels == 1 and val.meta == train.meta
    with pytest.warns(UserWarning, match="no test/ folder"):
        test = load_dataset(str(root), "test", image_size=6)
    assert test.samples == val.samples


def test_empty_or_classless_folders_are_data_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class sub-folders"):
        load_dataset(str(tmp_path / "empty"))
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (4, 4)).save(flat / "a.png")
    with pytest.raises(DataError, match="no class sub-folders"):
        load_dataset(str(flat))
    (tmp_path / "hollow" / "cls").mkdir(parents=True)
    with pytest.raises(DataError, match="no readable images"):
        load_dataset(str(tmp_path / "hollow"))


def test_eval_loader_matches_preprocess_images(folder):
    root = folder[0]
    with pytest.warns(UserWarning):
        val = load_dataset(str(root), "val", image_size=8, val_fraction=0.5)
    loader = make_loader(val, 4, train=False, num_workers=0)
    batches = list(loader)
    assert len(loader) == len(batches) == 2
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert torch.equal(y, torch.tensor([label for _, label in val.samples]))
    expected = preprocess_images([path for path, _ in val.samples], val.meta)
    torch.testing.assert_close(x, expected)


def test_train_loader_is_deterministic_per_epoch_and_worker_independent(folder):
    root = folder[0]
    with pytest.warns(UserWarning):
        train = load_dataset(str(root), "train", image_size=8, val_fraction=0.0)

    def run(epoch, num_workers):
        loader = make_loader(train, 5, train=True, seed=3, num_workers=num_workers)
        loader.set_epoch(epoch)
        batches = list(loader)
        return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])

    x0, y0 = run(0, 0)
    assert x0.shape == (12, 3, 8, 8) and x0.dtype == torch.float32
    assert sorted(y0.tolist()) == [0] * 6 + [1] * 6
    x0_again, y0_again = run(0, 1)  # decoded in a worker process: same pixels
    assert torch.equal(x0, x0_again) and torch.equal(y0, y0_again)
    x1, _ = run(1, 0)
    assert not torch.equal(x0, x1)
    eval_view = make_loader(train, 12, train=False, num_workers=0)
    assert not torch.equal(next(iter(eval_view))[0], x0)  # train batches are augmented


@pytest.mark.parametrize(
    "link, target, skipped",
    [
        ("cat/loop", ".", True),
        ("cat/up", "..", True),
        ("cat/sub/back", "../..", True),
        ("cat/other_class", "../dog", True),
        ("cat/again.png", "00.png", False),  # a file link to an image already counted
        ("cat/sub/alias", "..", True),
    ],
)
def test_links_never_repeat_files_or_leave_their_class_folder(
    tmp_path, write_images, link, target, skipped
):
    root = tmp_path / "pets"
    paths = write_images(root)  # 6 cats, 6 dogs
    (root / "cat" / "sub").mkdir()
    (root / link).symlink_to(target)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train = load_dataset(str(root), "train", image_size=8)
    assert sorted(train.samples) == sorted(paths)  # 12 samples, each real file once
    for path, label in train.samples:
        class_dir = (root / train.meta.class_names[label]).resolve()
        assert path.resolve().is_relative_to(class_dir)
    messages = [str(w.message) for w in caught]
    assert (
        any("loop or leave their class folder" in m and str(root / link) in m for m in messages)
        == skipped
    )


@pytest.mark.parametrize("sides, expected", [((96, 96, 100), 96), ((40, 60, 50), 50),
                                             ((640, 480, 800), 224)])  # fmt: skip
def test_default_size_is_the_images_own_median_capped_at_224(tmp_path, sides, expected):
    """A folder of 96x96 photos trains at 96x96, not at 224x224 (5.4x the compute); the
    median is of the shorter sides, and large photos are capped at 224."""
    for index, side in enumerate(sides):
        for label in ("a", "b"):
            (tmp_path / label).mkdir(exist_ok=True)
            image = np.full((side, side + 10, 3), 40 * index + 20, np.uint8)
            Image.fromarray(image).save(tmp_path / label / f"{index}.png")
    data = load_dataset(str(tmp_path), "train")
    assert tuple(data.meta.image_size) == (expected, expected)
    assert data[0][0].shape == (3, expected, expected)
    forced = load_dataset(str(tmp_path), "train", image_size=32)
    assert tuple(forced.meta.image_size) == (32, 32)


@pytest.mark.parametrize("image_size", [0, -3, 1.5, True, "96", (32,), (32, 0), 9000])
def test_image_sizes_that_are_not_sides_are_config_errors(tmp_path, write_images, image_size):
    """Not a TypeError from deep inside, nor a silent cast of 1.5 to 1."""
    write_images(tmp_path)
    with pytest.raises(ConfigError, match="image_size=.* give whole numbers in 1..8192"):
        load_dataset(str(tmp_path), "train", image_size=image_size)


def test_image_size_takes_numpy_integers_and_pairs(tmp_path, write_images):
    write_images(tmp_path)
    assert load_dataset(str(tmp_path), image_size=np.int64(12)).meta.image_size == (12, 12)
    assert load_dataset(str(tmp_path), image_size=[12, 10]).meta.image_size == (12, 10)


def test_a_subset_of_a_folder_keeps_every_class_share(tmp_path, write_images):
    """Samples lie class by class: the first 6 of 18 would be one class, a spread keeps 2+2+2."""
    write_images(tmp_path / "photos", classes=("ant", "bee", "cat"), per_class=6)
    data = load_dataset(str(tmp_path / "photos"), "train", val_fraction=0.0)
    assert data.labels.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    picked = data.subset(6)
    assert picked.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert [p for p, _ in picked.samples] == [data.samples[i][0] for i in (0, 3, 6, 9, 12, 15)]
    assert len(data.subset(100)) == 18 and len(data.subset(0)) == 0
    assert data.subset([17, 0]).labels.tolist() == [2, 0]  # indices are taken as given


def test_class_names_written_on_macos_match_the_same_names_written_elsewhere(
    tmp_path, write_images
):
    """macOS writes file names decomposed (NFD): Korean class folders unzipped from a Mac did
    not match the same names typed elsewhere (NFC), and the error showed two identical names."""
    nfc = ["셔츠", "바지"]
    nfd = [unicodedata.normalize("NFD", name) for name in nfc]
    assert nfd != nfc
    write_images(tmp_path / "photos" / "train", classes=nfd, per_class=3, size=(8, 8))
    write_images(tmp_path / "photos" / "test", classes=nfc, per_class=2, size=(8, 8))
    train = load_dataset(str(tmp_path / "photos"), "train", val_fraction=0.0)
    test = load_dataset(str(tmp_path / "photos"), "test")
    assert train.meta.class_names == sorted(nfc) and len(train) == 6
    assert len(test) == 4 and sorted(test.labels.tolist()) == [0, 0, 1, 1]
    # A checkpoint that recorded the decomposed names scores folders of the composed ones.
    trained = replace(train.meta, class_names=sorted(nfd))
    assert as_trained(test, trained, "photos").meta.class_names == sorted(nfd)
    write_images(tmp_path / "both", classes=[nfc[0], nfd[0]], per_class=1, size=(8, 8))
    with pytest.raises(DataError, match="the same name in two Unicode forms"):
        load_dataset(str(tmp_path / "both"), "train", val_fraction=0.0)
