"""preprocess_images (the predict/explain input path) and the metadata types."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from resnet.data import (
    ArrayDataset,
    DatasetMeta,
    channel_mean_std,
    input_files,
    make_loader,
    preprocess_images,
)
from resnet.errors import ConfigError, DataError

GRAY = DatasetMeta("gray", ["a", "b"], 1, (28, 28), (0.5,), (0.25,))
RGB = DatasetMeta("rgb", ["a", "b", "c"], 3, (16, 16), (0.1, 0.2, 0.3), (0.5, 0.4, 0.2))


def test_rgb_image_is_converted_to_gray_and_resized():
    color = (200, 100, 50)
    x = preprocess_images([Image.new("RGB", (40, 30), color)], GRAY)
    assert x.shape == (1, 1, 28, 28) and x.dtype == torch.float32
    luma = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]  # ITU-R 601-2, PIL's "L"
    expected = torch.full_like(x, (round(luma) / 255 - 0.5) / 0.25)
    torch.testing.assert_close(x, expected, rtol=0, atol=1.5 / 255 / 0.25)


def test_resize_keeps_aspect_and_takes_the_centre():
    # 60x30 image whose central 30x30 square is white and whose sides are black: a plain resize
    # would squeeze black columns in; resize-to-cover + centre crop sees only white.
    pixels = np.zeros((30, 60, 3), np.uint8)
    pixels[:, 15:45] = 255
    x = preprocess_images(Image.fromarray(pixels), RGB)
    assert x.shape == (1, 3, 16, 16)
    white = (1 - torch.tensor(RGB.mean)) / torch.tensor(RGB.std)
    torch.testing.assert_close(x[0, :, :, 1:-1], white.view(3, 1, 1).expand(3, 16, 14))


def test_paths_arrays_and_tensors_give_the_same_input(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    path = tmp_path / "img.png"
    Image.fromarray(pixels).save(path)
    from_path = preprocess_images([path, str(path)], RGB)
    from_array = preprocess_images([pixels], RGB)
    from_tensor = preprocess_images([torch.from_numpy(pixels).permute(2, 0, 1)], RGB)
    assert from_path.shape == (2, 3, 16, 16)
    for other in (from_path[1:], from_array, from_tensor):
        torch.testing.assert_close(from_path[:1], other)
    expected = (
        torch.from_numpy(pixels).permute(2, 0, 1) / 255 - torch.tensor(RGB.mean)[:, None, None]
    ) / torch.tensor(RGB.std)[:, None, None]
    torch.testing.assert_close(from_array[0], expected)


def test_unreadable_path_raises_data_error_naming_it(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(DataError) as info:
        preprocess_images([bad], RGB)
    assert str(bad) in str(info.value) and "no image format recognised" in str(info.value)
    assert "Reader" not in str(info.value)  # PIL's text names the file object, not the file
    with pytest.raises(DataError, match="missing.png: no such file; check the path"):
        preprocess_images([tmp_path / "missing.png"], RGB)
    (tmp_path / "photos").mkdir()
    with pytest.raises(DataError, match="photos: a folder, not an image; pass the image files"):
        preprocess_images([tmp_path / "photos"], RGB)  # was "not a readable image (Is a ...)"
    with pytest.raises(DataError, match="uint8"):
        preprocess_images([np.zeros((4, 4), np.float32)], RGB)


def test_volumes_must_already_have_the_model_size():
    meta = DatasetMeta("vol", ["a", "b"], 1, (4, 5, 6), (0.5,), (0.5,))
    volume = np.full((4, 5, 6), 255, np.uint8)
    x = preprocess_images([volume, volume], meta)
    assert x.shape == (2, 1, 4, 5, 6)
    torch.testing.assert_close(x, torch.ones_like(x))
    with pytest.raises(DataError, match="resample"):
        preprocess_images([np.zeros((4, 5, 7), np.uint8)], meta)


def test_volume_files_are_read_and_checked(tmp_path):
    meta = DatasetMeta("vol", ["a", "b"], 1, (4, 5, 6), (0.5,), (0.5,))
    volume = np.arange(120, dtype=np.uint8).reshape(4, 5, 6)
    np.save(tmp_path / "good.npy", volume)
    torch.testing.assert_close(
        preprocess_images([tmp_path / "good.npy"], meta), preprocess_images([volume], meta)
    )
    np.save(tmp_path / "float.npy", volume.astype(np.float32))
    np.save(tmp_path / "small.npy", volume[:3])
    (tmp_path / "text.npy").write_text("not numpy")
    np.savez(tmp_path / "archive.npz", volume=volume)
    (tmp_path / "archive.npz").rename(tmp_path / "archive.npy")  # np.load goes by content
    expected = {
        "float": "float.npy: volume is float32 (4, 5, 6); expected a uint8 .npy of shape (4, 5, 6)",
        "small": "small.npy: volume is uint8 (3, 5, 6)",
        "text": "text.npy: not a readable .npy volume",
        "absent": "absent.npy: no such file",
        "archive": "archive.npy: an .npz archive, not one volume",
    }
    for name, message in expected.items():
        with pytest.raises(DataError) as info:
            preprocess_images([tmp_path / f"{name}.npy"], meta)
        assert message in str(info.value) and "\n" not in str(info.value)


def test_folders_stand_for_the_images_inside_them_in_sorted_order(tmp_path):
    for name in ["b/2.png", "b/1.JPG", "a/deep/3.webp", "a/notes.txt", "a/.hidden.png", "0.npy"]:
        (tmp_path / "dir" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "dir" / name).write_bytes(b"")
    listed = input_files([tmp_path / "given.png", tmp_path / "dir"], GRAY)
    names = [str(path.relative_to(tmp_path)) for path in listed]
    assert names == ["given.png", "dir/a/deep/3.webp", "dir/b/1.JPG", "dir/b/2.png"]
    volume = DatasetMeta("vol", ["a", "b"], 1, (4, 5, 6), (0.5,), (0.5,))
    assert input_files([tmp_path / "dir"], volume) == [tmp_path / "dir" / "0.npy"]
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(DataError, match="empty: folder holds no files ending in .jpg, .jpeg"):
        input_files([tmp_path / "empty"], GRAY)


def test_meta_round_trips_through_json():
    restored = DatasetMeta.from_dict(json.loads(json.dumps(RGB.to_dict())))
    assert restored == RGB and restored.num_classes == 3
    assert isinstance(restored.image_size, tuple)
    with pytest.raises(DataError, match="class_names"):
        DatasetMeta.from_dict({"name": "x"})
    with pytest.raises(DataError, match="channels"):
        DatasetMeta("x", ["a"], 3, (4, 4), (0.5,), (0.5,))


@pytest.mark.parametrize("size", [(240, 300), (300, 240), (256, 256), (224, 224), (97, 131)])
def test_a_crop_fraction_is_torchvisions_resize_then_centre_crop(size):
    """0.875 at 224: torchvision's ImageNet evaluation (Resize(256), CenterCrop(224)), pixel
    for pixel; checkpoints written before the field read as 1.0 (no crop)."""
    from torchvision import transforms

    from resnet.data.preprocess import pil_to_tensor, resize_center_crop

    pixels = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    expected = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224)])(image)
    ours = resize_center_crop(image, (224, 224), 224 / 256)
    assert torch.equal(pil_to_tensor(ours), pil_to_tensor(expected))
    old = {k: v for k, v in RGB.to_dict().items() if k != "crop_fraction"}
    assert DatasetMeta.from_dict(old).crop_fraction == 1.0
    for bad in (0, 1.5, "0.9", True):
        with pytest.raises(DataError, match="crop_fraction must be in"):
            DatasetMeta.from_dict({**RGB.to_dict(), "crop_fraction": bad})


def test_a_subset_of_arrays_stored_class_by_class_keeps_every_class():
    """An .npz built class by class: its first 6 samples are class 0 only, and an epoch scored
    on them (eval_subset) read 99% for a model that knew one class. A count is spread evenly
    over such data; shuffled data keeps its first n (the numbers measured on it stay)."""
    tiny = replace(GRAY, class_names=["a", "b", "c"], image_size=(2, 2))
    images = torch.arange(12 * 4, dtype=torch.uint8).reshape(12, 1, 2, 2)
    for grouped in ([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2], [2, 2, 2, 2, 0, 0, 0, 0, 1, 1, 1, 1]):
        labels = torch.tensor(grouped)
        picked = ArrayDataset(images, labels, tiny).subset(6)
        assert picked.labels.bincount(minlength=3).tolist() == [2, 2, 2]
        assert torch.equal(picked.images, images[[0, 2, 4, 6, 8, 10]])
    shuffled = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2])
    assert torch.equal(ArrayDataset(images, shuffled, tiny).subset(5).images, images[:5])
    one_class = ArrayDataset(images, torch.zeros(12, dtype=torch.int64), tiny)
    assert torch.equal(one_class.subset(5).images, images[:5])
    assert torch.equal(ArrayDataset(images, labels, tiny).subset([11, 0]).images, images[[11, 0]])


def test_array_dataset_subset_and_validation():
    images = torch.arange(5 * 4, dtype=torch.uint8).reshape(5, 1, 2, 2)
    tiny = replace(GRAY, image_size=(2, 2))
    dataset = ArrayDataset(images, torch.tensor([0, 1, 0, 1, 0]), tiny)
    assert len(dataset.subset(3)) == 3 and len(dataset.subset(10)) == 5
    picked = dataset.subset([4, 1])
    assert torch.equal(picked.labels, torch.tensor([0, 1])) and torch.equal(
        picked.images[0], images[4]
    )
    with pytest.raises(DataError, match="uint8"):
        ArrayDataset(images.float(), dataset.labels, tiny)
    with pytest.raises(DataError, match="int64"):
        ArrayDataset(images, dataset.labels.int(), tiny)
    with pytest.raises(DataError, match="images are 2x2 but the metadata says 28x28; resize"):
        ArrayDataset(images, dataset.labels, GRAY)  # a size the metadata does not describe
    for fraction in (2.5, [0.0, 1.0], torch.tensor([1.5])):  # 2.5 became the first 1 sample
        with pytest.raises(ConfigError, match="count or whole-number indices"):
            dataset.subset(fraction)
    assert len(dataset.subset(np.int64(2))) == 2 and len(dataset.subset(torch.tensor([3]))) == 1
    with pytest.raises(ConfigError, match="batch_size must be a whole number >= 1, got 1.5"):
        make_loader(dataset, 1.5, train=False)
    classes = GRAY.num_classes  # a label past the class names failed inside the loss, mid-run
    for bad in (classes, -1):
        labels = torch.tensor([0, 1, 0, 1, bad])
        with pytest.raises(DataError, match=rf"labels span .* labels must be 0..{classes - 1}"):
            ArrayDataset(images, labels, tiny)


def test_channel_mean_std_is_exact():
    images = torch.randint(0, 256, (7, 3, 5, 4), generator=torch.Generator().manual_seed(0)).to(
        torch.uint8
    )
    mean, std = channel_mean_std(images)
    reference = images.double() / 255
    torch.testing.assert_close(
        torch.tensor(mean, dtype=torch.float64), reference.mean(dim=(0, 2, 3))
    )
    torch.testing.assert_close(
        torch.tensor(std, dtype=torch.float64), reference.std(dim=(0, 2, 3), unbiased=False)
    )
