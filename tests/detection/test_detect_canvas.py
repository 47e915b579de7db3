"""The canvas task: exact boxes around real Fashion-MNIST items, deterministic per seed."""

from __future__ import annotations

import pytest
import torch

from resnet.detection import build_canvases, fashion_mnist_canvases, load_canvases, save_canvases
from resnet.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def canvases():
    return fashion_mnist_canvases("test", 24, seed=7, canvas_size=96, item_sizes=(16, 40))


def test_boxes_are_tight_around_each_item_and_inside_the_canvas(canvases) -> None:
    assert canvases.images.shape == (24, 1, 96, 96) and canvases.images.dtype == torch.uint8
    assert len(canvases.class_names) == 10 and canvases.num_classes == 11
    for image, boxes, labels in zip(canvases.images, canvases.boxes, canvases.labels):
        assert 1 <= len(boxes) == len(labels) <= 4
        assert labels.min() >= 1 and labels.max() <= 10  # 0 is the background
        assert boxes.min() >= 0 and boxes.max() <= 96
        covered = torch.zeros(96, 96, dtype=torch.bool)
        for x0, y0, x1, y1 in boxes.long().tolist():
            assert x1 > x0 and y1 > y0
            assert not covered[y0:y1, x0:x1].any()  # items never overlap
            covered[y0:y1, x0:x1] = True
            crop = image[0, y0:y1, x0:x1] > 0
            # Tight: every edge row and column of the box touches the item.
            assert crop[0].any() and crop[-1].any() and crop[:, 0].any() and crop[:, -1].any()
        assert not (image[0] > 0)[~covered].any()  # every nonzero pixel is inside a box


def test_known_item_gets_its_exact_box() -> None:
    item = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    item[0, 0, 5:20, 9:14] = 200  # a 5 x 15 bar
    made = build_canvases(item, torch.tensor([3]), 5, class_names=list("abcdefghij"),
                          canvas_size=64, item_sizes=(28, 28), items_per_canvas=(1, 1))  # fmt: skip
    for image, boxes, labels in zip(made.images, made.boxes, made.labels):
        x0, y0, x1, y1 = boxes[0].tolist()
        assert (x1 - x0, y1 - y0) == (5, 15) and labels.tolist() == [4]
        assert image[0, int(y0) : int(y1), int(x0) : int(x1)].eq(200).all()
        assert int(image.sum()) == 200 * 5 * 15


def test_same_seed_same_canvases_other_seed_other_canvases(canvases) -> None:
    again = fashion_mnist_canvases("test", 24, seed=7, canvas_size=96, item_sizes=(16, 40))
    other = fashion_mnist_canvases("test", 24, seed=8, canvas_size=96, item_sizes=(16, 40))
    assert torch.equal(again.images, canvases.images)
    assert all(torch.equal(a, b) for a, b in zip(again.boxes, canvases.boxes))
    assert all(torch.equal(a, b) for a, b in zip(again.labels, canvases.labels))
    assert not torch.equal(other.images, canvases.images)


def test_npz_round_trip_and_bad_file(canvases, tmp_path) -> None:
    path = save_canvases(canvases, tmp_path / "canvases.npz")
    loaded = load_canvases(path)
    assert torch.equal(loaded.images, canvases.images)
    assert loaded.class_names == canvases.class_names
    assert all(torch.equal(a, b) for a, b in zip(loaded.boxes, canvases.boxes))
    assert all(torch.equal(a, b) for a, b in zip(loaded.labels, canvases.labels))
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(DataError, match="junk.npz"):
        load_canvases(tmp_path / "junk.npz")


def test_three_channel_canvases_repeat_the_gray_value(canvases) -> None:
    rgb = fashion_mnist_canvases("test", 24, seed=7, canvas_size=96, item_sizes=(16, 40),
                                 channels=3)  # fmt: skip
    assert rgb.images.shape == (24, 3, 96, 96)
    assert torch.equal(rgb.images, canvases.images.expand(-1, 3, -1, -1))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"item_sizes": (30, 200)}, "must satisfy 4 <= low"),
        ({"channels": 2}, "channels must be 1"),
        ({"items_per_canvas": (0, 2)}, "items_per_canvas"),
        # Bounded before the (N, side, side) array: 100000 px asked numpy for 28 GiB.
        ({"canvas_size": 100000, "item_sizes": (20, 56)}, "canvas_size 100000 is out of range"),
        ({"num_canvases": 20000, "canvas_size": 512}, "20000 canvases of 512x512 take 4.9 GiB"),
        ({"seed": -1}, "seed must be a whole number >= 0, got -1"),  # numpy's ValueError
        ({"seed": (3, -2)}, "seed must be a whole number >= 0, got -2"),
    ],
)
def test_bad_options(kwargs, message) -> None:
    items = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
    options = {"num_canvases": 3, **kwargs}
    with pytest.raises(ConfigError, match=message):
        build_canvases(items, torch.tensor([0, 1]), class_names=["a", "b"], **options)
