"""TensorLoader: determinism per (seed, epoch), coverage, batched crop/flip vs a per-sample loop,
fused normalization, rank sharding."""

import pytest
import torch
import torch.nn.functional as F

from resnet.data import (
    ArrayDataset,
    DatasetMeta,
    TensorLoader,
    batch_crop_flip,
    make_loader,
)
from resnet.errors import ConfigError

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def make_dataset(n=50, shape=(3, 8, 8), name="synthetic") -> ArrayDataset:
    """Labels are the sample indices, so batches show exactly which samples they hold."""
    images = torch.randint(0, 256, (n, *shape), generator=torch.Generator().manual_seed(0))
    channels = shape[0]
    meta = DatasetMeta(
        name, [str(i) for i in range(n)], channels, shape[1:], MEAN[:channels], STD[:channels]
    )
    return ArrayDataset(images.to(torch.uint8), torch.arange(n), meta)


def epoch_batches(loader: TensorLoader, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader.set_epoch(epoch)
    return list(loader)


def normalize_reference(images: torch.Tensor, meta: DatasetMeta) -> torch.Tensor:
    shape = (1, -1) + (1,) * (images.dim() - 2)
    mean = torch.tensor(meta.mean).view(shape)
    std = torch.tensor(meta.std).view(shape)
    return (images.float() / 255 - mean) / std


def crop_flip_reference(images, offsets, flips, pad):
    """One sample at a time: pad, slice the window, mirror the last axis."""
    out = []
    for b, image in enumerate(images):
        spatial = image.shape[1:]
        if offsets is not None:
            image = F.pad(image, (pad,) * (2 * len(spatial)))
            window = [slice(int(o), int(o) + s) for o, s in zip(offsets[b], spatial)]
            image = image[(slice(None), *window)]
        if flips is not None and flips[b]:
            image = image.flip(-1)
        out.append(image)
    return torch.stack(out)


def test_same_seed_and_epoch_give_identical_batches_regardless_of_history():
    dataset = make_dataset()
    resumed = TensorLoader(dataset, 16, augment=True, seed=7)
    fresh = TensorLoader(dataset, 16, augment=True, seed=7)
    epoch_batches(resumed, 0)
    epoch_batches(resumed, 1)
    for (xa, ya), (xb, yb) in zip(epoch_batches(resumed, 2), epoch_batches(fresh, 2), strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_different_epochs_and_seeds_differ():
    dataset = make_dataset()
    loader = TensorLoader(dataset, 50)
    orders = [epoch_batches(loader, e)[0][1] for e in range(3)]
    assert not torch.equal(orders[0], orders[1]) and not torch.equal(orders[1], orders[2])
    other_seed = epoch_batches(TensorLoader(dataset, 50, seed=1), 0)[0][1]
    assert not torch.equal(orders[0], other_seed)


@pytest.mark.parametrize("drop_last, batches, samples", [(False, 4, 50), (True, 3, 48)])
def test_every_sample_once_per_epoch(drop_last, batches, samples):
    loader = TensorLoader(make_dataset(), 16, drop_last=drop_last)
    got = epoch_batches(loader, 0)
    assert len(loader) == len(got) == batches
    labels = torch.cat([y for _, y in got])
    assert labels.numel() == samples and labels.unique().numel() == samples
    if not drop_last:
        assert torch.equal(labels.sort().values, torch.arange(50))
    assert [len(y) for _, y in got][-1] == (2 if not drop_last else 16)


def test_batched_crop_flip_equals_per_sample_reference():
    generator = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (12, 3, 7, 9), generator=generator, dtype=torch.uint8)
    offsets = torch.randint(0, 2 * 3 + 1, (12, 2), generator=generator)
    flips = torch.rand(12, generator=generator) < 0.5
    for o, f in ((offsets, flips), (offsets, None), (None, flips)):
        expected = crop_flip_reference(images, o, f, pad=3)
        assert torch.equal(batch_crop_flip(images, o, f, pad=3), expected)
    assert flips.any() and not flips.all() and (offsets != 3).any()


def test_batched_crop_flip_on_volumes():
    generator = torch.Generator().manual_seed(4)
    volumes = torch.randint(0, 256, (5, 1, 4, 5, 6), generator=generator, dtype=torch.uint8)
    offsets = torch.randint(0, 5, (5, 3), generator=generator)
    flips = torch.tensor([True, False, True, True, False])
    expected = crop_flip_reference(volumes, offsets, flips, pad=2)
    assert torch.equal(batch_crop_flip(volumes, offsets, flips, pad=2), expected)


def test_loader_output_equals_reference_for_its_drawn_offsets():
    dataset = make_dataset()
    loader = TensorLoader(dataset, 16, augment=True, pad=4, seed=11)
    plan = loader.epoch_plan(5)
    assert plan.offsets is not None and plan.flips is not None
    x = torch.cat([x for x, _ in epoch_batches(loader, 5)])
    raw = crop_flip_reference(dataset.images[plan.order], plan.offsets, plan.flips, pad=4)
    torch.testing.assert_close(x, normalize_reference(raw, dataset.meta), rtol=0, atol=1e-5)


def test_normalization_matches_reference_without_augmentation():
    dataset = make_dataset()
    loader = make_loader(dataset, 20, train=False)
    x, y = next(iter(loader))
    assert torch.equal(y, torch.arange(20))  # eval: in order
    assert x.dtype == torch.float32 and x.shape == (20, 3, 8, 8)
    torch.testing.assert_close(x, normalize_reference(dataset.images[:20], dataset.meta))
    half = make_loader(dataset, 20, train=False, dtype=torch.bfloat16)
    assert next(iter(half))[0].dtype == torch.bfloat16


@pytest.mark.parametrize("n, world_size", [(48, 3), (50, 3), (50, 4)])
def test_rank_shards_are_disjoint_and_cover_the_permutation(n, world_size):
    dataset = make_dataset(n)
    full = TensorLoader(dataset, 8, seed=2).epoch_plan(1).order
    shards = [
        torch.cat(
            [
                y
                for _, y in epoch_batches(
                    TensorLoader(dataset, 8, seed=2, rank=r, world_size=world_size), 1
                )
            ]
        )
        for r in range(world_size)
    ]
    per_rank = n // world_size
    assert all(len(s) == per_rank for s in shards)
    union = torch.cat(shards)
    assert union.unique().numel() == per_rank * world_size  # disjoint
    assert torch.equal(union.sort().values, full[: per_rank * world_size].sort().values)
    for r, shard in enumerate(shards):
        assert torch.equal(shard, full[r : per_rank * world_size : world_size])
    assert (
        len(
            {
                len(TensorLoader(dataset, 8, rank=r, world_size=world_size))
                for r in range(world_size)
            }
        )
        == 1
    )


def test_volumes_flip_but_do_not_crop_by_default():
    dataset = make_dataset(10, shape=(1, 3, 4, 5))
    loader = TensorLoader(dataset, 10, augment=True, seed=1)
    plan = loader.epoch_plan(0)
    assert plan.offsets is None and plan.flips is not None
    x, y = epoch_batches(loader, 0)[0]
    assert x.shape == (10, 1, 3, 4, 5)
    raw = crop_flip_reference(dataset.images[plan.order], None, plan.flips, pad=0)
    torch.testing.assert_close(x, normalize_reference(raw, dataset.meta), rtol=0, atol=1e-5)
    cropped = TensorLoader(dataset, 10, augment=True, crop=True, pad=1)
    assert cropped.epoch_plan(0).offsets.shape == (10, 3)


def test_channels_last_and_make_loader_defaults():
    dataset = make_dataset()
    x, _ = next(iter(TensorLoader(dataset, 8, channels_last=True)))
    assert x.is_contiguous(memory_format=torch.channels_last)
    train = make_loader(dataset, 8, train=True, device="cpu")
    assert train.shuffle and train.crop and train.flip
    digits = make_loader(make_dataset(name="mnist"), 8, train=True)
    assert digits.crop and not digits.flip  # mirrored digits are other digits


def test_invalid_loader_arguments_are_config_errors():
    dataset = make_dataset(4)
    with pytest.raises(ConfigError, match="rank"):
        TensorLoader(dataset, 2, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="world_size"):
        TensorLoader(dataset, 2, rank=0, world_size=5)
    with pytest.raises(ConfigError, match="batch_size"):
        TensorLoader(dataset, 0)


def test_a_pad_as_wide_as_the_image_is_refused_where_it_crops():
    """pad 100 on 28x28 images trained on crops that were mostly, or wholly, zero padding."""
    dataset = make_dataset(4)  # 8x8
    with pytest.raises(ConfigError, match=r"pad 8 is not below the images' side \(8\)"):
        TensorLoader(dataset, 2, augment=True, pad=8)
    assert TensorLoader(dataset, 2, augment=True, pad=7).pad == 7
    assert TensorLoader(dataset, 2, augment=False, pad=100).pad == 100  # no crop, no refusal
    volumes = make_dataset(4, shape=(1, 4, 4, 4))  # volumes are not cropped by default
    assert not TensorLoader(volumes, 2, augment=True, pad=16).crop
