"""Random erasing: box statistics against the paper's / torchvision's ranges, the batched mask
against a per-sample loop, and the loaders' contract (a pure function of (seed, epoch), the
other augmentation unchanged, rank shards, folders, volumes, config errors)."""

import pytest
import torch

from resnet.data import ArrayDataset, DatasetMeta, TensorLoader, load_dataset, make_loader
from resnet.data.erasing import RATIO, SCALE, erase, erasing_boxes
from resnet.engine.config import TrainConfig
from resnet.errors import ConfigError


def make_dataset(n, shape):
    """Gray images of values 1..255 (none normalises to exactly 0), labels 0..n-1."""
    images = torch.randint(1, 256, (n, *shape), generator=torch.Generator().manual_seed(0))
    meta = DatasetMeta("gray", [str(i) for i in range(n)], 1, shape[1:], (0.0,), (1.0,))
    return ArrayDataset(images.to(torch.uint8), torch.arange(n), meta)


def boxes(n=20_000, height=28, width=28, p=0.5, seed=0):
    return erasing_boxes(torch.Generator().manual_seed(seed), n, height, width, p)


def test_boxes_follow_the_probability_area_and_aspect_ranges():
    drawn = boxes()
    top, left, h, w = drawn.unbind(1)
    erased = h > 0
    assert abs(erased.float().mean().item() - 0.5) < 0.02
    assert (top + h <= 28).all() and (left + w <= 28).all() and (top >= 0).all()
    area = (h[erased] * w[erased]).float() / (28 * 28)
    # Rounding a side to whole pixels moves the area a little past the drawn range.
    assert area.min() >= SCALE[0] * 0.5 and area.max() <= SCALE[1] * 1.3
    assert abs(area.mean().item() - sum(SCALE) / 2) < 0.02  # uniform area: mean in the middle
    ratio = h[erased].float() / w[erased].float()
    assert ratio.min() >= RATIO[0] * 0.7 and ratio.max() <= RATIO[1] * 1.4
    # Corners are spread over the whole room the box leaves, not stuck at one edge.
    assert top[erased].float().std() > 3 and left[erased].float().std() > 3


@pytest.mark.parametrize("p, expected", [(0.0, 0.0), (1.0, 1.0)])
def test_probability_zero_erases_nothing_and_one_erases_all(p, expected):
    assert (boxes(n=2_000, p=p)[:, 2] > 0).float().mean().item() == pytest.approx(expected)


def test_boxes_are_a_pure_function_of_the_generator():
    assert torch.equal(boxes(seed=3), boxes(seed=3))
    assert not torch.equal(boxes(seed=3), boxes(seed=4))


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_probability_out_of_range_is_a_config_error(p):
    with pytest.raises(ConfigError, match="random_erasing must be a probability"):
        boxes(n=4, p=p)


def test_batched_erase_equals_per_sample_loop():
    images = torch.randn(64, 3, 12, 9) + 5  # no pixel is 0 before erasing
    drawn = boxes(n=64, height=12, width=9, p=0.7)
    expected = images.clone()
    for b, (top, left, h, w) in enumerate(drawn.tolist()):
        expected[b, :, top : top + h, left : left + w] = 0
    assert torch.equal(erase(images, drawn), expected)


def test_loader_erases_after_normalising_and_keeps_order_crops_and_flips():
    dataset = make_dataset(n=40, shape=(1, 16, 16))
    plain = TensorLoader(dataset, 8, augment=True, seed=5)
    erasing = TensorLoader(dataset, 8, augment=True, seed=5, erasing=1.0)
    for epoch in (0, 3):
        a, b = plain.epoch_plan(epoch), erasing.epoch_plan(epoch)
        assert torch.equal(a.order, b.order) and torch.equal(a.offsets, b.offsets)
        assert torch.equal(a.flips, b.flips) and a.erase_boxes is None
        plain.set_epoch(epoch), erasing.set_epoch(epoch)
        x_plain = torch.cat([x for x, _ in plain])
        x_erased = torch.cat([x for x, _ in erasing])
        assert torch.equal(x_erased, erase(x_plain, b.erase_boxes))
        assert (x_erased == 0).any() and not torch.equal(x_plain, x_erased)
    again = TensorLoader(dataset, 8, augment=True, seed=5, erasing=1.0)
    assert torch.equal(again.epoch_plan(3).erase_boxes, erasing.epoch_plan(3).erase_boxes)


def test_rank_shards_take_their_rows_of_the_full_plan():
    dataset = make_dataset(n=30, shape=(1, 10, 10))
    full = TensorLoader(dataset, 4, augment=True, seed=1, erasing=0.5).epoch_plan(2)
    for rank in range(3):
        shard = TensorLoader(
            dataset, 4, augment=True, seed=1, erasing=0.5, rank=rank, world_size=3
        ).epoch_plan(2)
        assert torch.equal(shard.erase_boxes, full.erase_boxes[rank::3])


def test_eval_loaders_and_unaugmented_loaders_never_erase():
    dataset = make_dataset(n=16, shape=(1, 8, 8))
    loader = make_loader(dataset, 8, train=False, erasing=1.0)
    assert loader.epoch_plan(0).erase_boxes is None
    assert TensorLoader(dataset, 8, augment=False, erasing=1.0).epoch_plan(0).erase_boxes is None


def test_volumes_are_a_config_error():
    volumes = make_dataset(n=8, shape=(1, 4, 6, 6))
    with pytest.raises(ConfigError, match="random_erasing works on 2D images"):
        TensorLoader(volumes, 4, augment=True, erasing=0.5)


def test_folder_loader_erases_the_same_way(tmp_path, write_images):
    write_images(tmp_path, ("a", "b"), per_class=5, size=(12, 12))
    train = load_dataset(str(tmp_path), "train", image_size=12, val_fraction=0.0)

    def epoch(erasing):
        loader = make_loader(train, 4, train=True, seed=2, num_workers=0, erasing=erasing)
        loader.set_epoch(1)
        return torch.cat([x for x, _ in loader]), loader

    x_plain, _ = epoch(0.0)
    x_erased, loader = epoch(1.0)
    assert torch.equal(x_erased, erase(x_plain, loader.epoch_erase_boxes(1)))
    assert not torch.equal(x_plain, x_erased)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"random_erasing": 1.5}, "random_erasing must be"),
        ({"random_erasing": 0.5, "augment": False}, "random_erasing needs augment: true"),
    ],
)
def test_config_errors(values, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**values)


def test_the_config_reaches_the_training_loader_and_only_it():
    from resnet.engine.distributed import DistContext
    from resnet.engine.setup import load_data

    images = make_dataset(n=32, shape=(1, 8, 8))
    cfg = TrainConfig(random_erasing=0.5, val_fraction=0.0, batch_size=8)
    ctx = DistContext(0, 1, 0, torch.device("cpu"))
    data = load_data(cfg, ctx, 8, datasets={"train": images, "test": images})
    assert data.train_loader.erasing == 0.5 and data.eval_loader.erasing == 0.0
    assert data.train_loader.epoch_plan(0).erase_boxes is not None
