"""``load_dataset``: one entry point for the built-in datasets, image folders and ``.npz`` files.

An explicit ``data_dir`` is the only place a built-in dataset is looked for (``data_dir`` and
``data_dir/<name>``); if it lacks the files they are downloaded into it (when ``download`` is
set), and a ``data_dir`` that does not exist is an error, never a reason to use another copy.
With ``data_dir=None`` the search is ``$RESNET_DATA``, ``/usr/share/datasets/<name>`` (Debian's
``dataset-fashion-mnist``), ``~/.cache/resnet/<name>`` (``$RESNET_DATA`` also with ``<name>/``
appended), and downloads go to ``~/.cache/resnet/<name>``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from resnet.checks import switches
from resnet.data.cifar import CIFAR_VARIANTS, find_cifar_files, load_cifar, missing_cifar_files
from resnet.data.idx import (
    IDX_FILES,
    check_idx_dataset,
    find_idx_files,
    load_idx_split,
    missing_idx_files,
)
from resnet.data.meta import (
    DEFAULT_VAL_FRACTION,
    ArrayDataset,
    DatasetMeta,
    channel_mean_std,
    seeded_split,
)
from resnet.data.npz import load_npz_arrays
from resnet.data.preprocess import resize_arrays
from resnet.errors import ConfigError, DataError, NoSplitError

__all__ = [
    "CACHE_ROOT",
    "SYSTEM_DATA_ROOT",
    "CLASS_NAMES",
    "list_datasets",
    "dataset_search_dirs",
    "load_dataset",
]

# Module attributes (not constants baked into functions) so tests can point them elsewhere.
CACHE_ROOT = Path.home() / ".cache" / "resnet"
SYSTEM_DATA_ROOT = Path("/usr/share/datasets")

CLASS_NAMES: dict[str, list[str]] = {
    "fashion-mnist": [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ],
    "mnist": [str(i) for i in range(10)],
    "cifar10": [
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ],
    "cifar100": [
        "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
        "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
        "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
        "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest",
        "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower",
        "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
        "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear",
        "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine", "possum", "rabbit",
        "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk",
        "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower",
        "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor", "train",
        "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
    ],
}  # fmt: skip

_ALIASES = {
    "fashion-mnist": "fashion-mnist",
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "mnist": "mnist",
    "cifar10": "cifar10",
    "cifar-10": "cifar10",
    "cifar100": "cifar100",
    "cifar-100": "cifar100",
}
_TORCHVISION_CLASSES = {
    "fashion-mnist": "FashionMNIST",
    "mnist": "MNIST",
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
}
_SPLITS = ("train", "val", "test")
# Train-split channel statistics per source, keyed like the file caches (path + mtimes).
_STATS_CACHE: dict[tuple, tuple[tuple[float, ...], tuple[float, ...]]] = {}


def list_datasets() -> list[str]:
    """Names of the built-in datasets (image folders and .npz files are passed as paths)."""
    return sorted(CLASS_NAMES)


def dataset_search_dirs(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Directories searched for built-in dataset ``name``, in order: only ``data_dir`` (and
    ``data_dir/<name>``) when it is given, the default locations when it is None."""
    if data_dir is not None:
        base = Path(data_dir).expanduser()
        return [base, base / name]
    dirs = []
    if os.environ.get("RESNET_DATA"):
        base = Path(os.environ["RESNET_DATA"]).expanduser()
        dirs += [base, base / name]
    dirs += [SYSTEM_DATA_ROOT / name, CACHE_ROOT / name]
    return list(dict.fromkeys(dirs))


def load_dataset(
    name: str,
    split: str = "train",
    *,
    data_dir: str | os.PathLike | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
    download: bool = True,
    image_size: int | None = None,
) -> Any:
    """Load one split of a dataset.

    ``name`` is a built-in name (:func:`list_datasets`), a path to a MedMNIST-style ``.npz``
    (-> :class:`ArrayDataset`) or to an image folder (-> ``ImageFolderDataset``). ``image_size``
    is the side images are resized to: a folder's default is its median image side (at most
    224); arrays keep their own size unless given one (resized by :func:`resize_arrays`).
    ``data_dir`` applies to built-in names only. Sources without a val split use a seeded
    ``val_fraction`` of train as "val" and the rest as "train" (the default 0 keeps all of
    train and leaves "val" to ``test``).
    """
    switches(download=download)
    if split not in _SPLITS:
        raise ConfigError(f"unknown split {split!r}; use one of {', '.join(_SPLITS)}")
    if not isinstance(name, (str, os.PathLike)):
        raise ConfigError(
            f"dataset must be a name ({', '.join(list_datasets())}) or a path, got {name!r}"
        )
    canonical = _ALIASES.get(str(name).lower())
    path = Path(name).expanduser()
    if canonical is None and path.is_dir():
        from resnet.data.folder import load_image_folder

        return load_image_folder(
            path, split, image_size=image_size, val_fraction=val_fraction, seed=seed
        )
    if canonical is not None:
        splits, class_names, key = _load_builtin(canonical, data_dir, download)
        source_name = canonical
    elif path.suffix.lower() == ".npz":
        if not path.is_file():
            raise DataError(f"{path} does not exist; check the path to the .npz file")
        splits, class_names = load_npz_arrays(path)
        stat = path.stat()
        key = ("npz", str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        source_name = path.stem
    else:
        raise DataError(
            f"unknown dataset {name!r}: not one of {', '.join(list_datasets())}, an existing "
            "image folder, or a .npz file; check the name or path"
        )

    train_images = splits["train"][0]
    if key not in _STATS_CACHE:
        _STATS_CACHE[key] = channel_mean_std(train_images)
    mean, std = _STATS_CACHE[key]
    images, labels = _select_split(splits, split, val_fraction, seed, source_name)
    images = torch.from_numpy(images)
    size = tuple(train_images.shape[2:])
    if image_size is not None and size != (image_size,) * len(size):
        # Resized as predict resizes a file, normalised with the source's own statistics (as
        # torchvision users normalise CIFAR at any size); mean/std barely move under resizing.
        images = resize_arrays(images, image_size)
        size = tuple(images.shape[2:])
    meta = DatasetMeta(
        name=source_name,
        class_names=class_names,
        channels=train_images.shape[1],
        image_size=size,
        mean=mean,
        std=std,
    )
    return ArrayDataset(images, torch.from_numpy(labels), meta)


def _select_split(
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    split: str,
    val_fraction: float,
    seed: int,
    source_name: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Writable copies of the requested split's (images, labels)."""
    if split == "test":
        if "test" not in splits:
            raise DataError(f"{source_name} has no test split (no test_images/test_labels)")
        images, labels = splits["test"]
        return images.copy(), labels.copy()
    if "val" in splits:
        images, labels = splits[split]
        return images.copy(), labels.copy()
    if split == "val" and val_fraction <= 0:
        raise NoSplitError(
            f"{source_name} has no val split and val_fraction=0 leaves none; pass "
            "val_fraction > 0 (e.g. 0.1) or use split='test'"
        )
    images, labels = splits["train"]
    train_idx, val_idx = seeded_split(len(labels), val_fraction, seed)
    index = (train_idx if split == "train" else val_idx).numpy()
    if len(index) == len(labels):  # val_fraction=0: the whole split, no gather needed
        return images.copy(), labels.copy()
    return images[index], labels[index]


def _load_builtin(
    name: str, data_dir: str | os.PathLike | None, download: bool
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str], tuple]:
    """(splits, class names, cache key) of a built-in dataset, downloading it if allowed."""
    target = CACHE_ROOT / name
    if data_dir is not None:
        target = Path(data_dir).expanduser()
        if not target.is_dir():
            problem = "is a file, not a directory" if target.exists() else "does not exist"
            raise DataError(
                f"data_dir {target} {problem}; pass the directory that holds "
                f"{_expected_files(name)}, or leave data_dir unset to search the default places"
            )
    found = _find_builtin(name, dataset_search_dirs(name, data_dir))
    failure = "download is disabled"
    if found is None and download:
        before = _folders_under(target)
        try:
            _download(name, target)
            found = _find_builtin(name, [target, target / name])
            failure = "the download left no usable files"
        except Exception as exc:  # no network, no torchvision, disk full, ...: all explained below
            failure = f"the download failed ({type(exc).__name__}: {_first_line(exc)})"
        if found is None:  # a failed download left empty folders (cifar10/, mnist/MNIST/raw)
            _remove_empty_folders(target, keep=before)
    if found is None:
        raise DataError(_missing_message(name, data_dir, failure))

    if name in CIFAR_VARIANTS:
        splits, names = load_cifar(found)
        key = ("cifar", found, *(_stamp(p) for p in (*found.train, found.test)))
        return splits, names or CLASS_NAMES[name], key
    splits = {s: load_idx_split(*found[s], num_classes=10) for s in IDX_FILES}
    for split, (_, labels) in splits.items():
        check_idx_dataset(name, labels, found[split][1])
    key = ("idx", *((str(p), *_stamp(p)) for pair in found.values() for p in pair))
    return splits, CLASS_NAMES[name], key


def _folders_under(root: Path) -> set[Path]:
    """``root`` and the folders below it, as they are now (none if it does not exist)."""
    if not root.is_dir():
        return set()
    return {root, *(p for p in root.rglob("*") if p.is_dir())}


def _remove_empty_folders(root: Path, keep: set[Path]) -> None:
    """Remove the folders under (and including) ``root`` that are empty and not in ``keep``,
    deepest first, so a failed download leaves the disk as it found it."""
    for folder in sorted(_folders_under(root) - keep, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty (a file was written) or not ours
            folder.rmdir()


def _find_builtin(name: str, dirs: list[Path]) -> Any:
    for directory in dirs:
        if not directory.is_dir():
            continue
        found = (
            find_cifar_files(directory, name)
            if name in CIFAR_VARIANTS
            else find_idx_files(directory)
        )
        if found is not None:
            return found
    return None


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def _download(name: str, target: Path) -> None:
    # torchvision is imported only here: `import resnet.data` must stay fast.
    import torchvision.datasets

    dataset_class = getattr(torchvision.datasets, _TORCHVISION_CLASSES[name])
    target.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        dataset_class(root=str(target), train=train, download=True)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


def _expected_files(name: str) -> str:
    if name in CIFAR_VARIANTS:
        spec = CIFAR_VARIANTS[name]
        return (
            f"the extracted {spec.python_dir}/ folder (python version) or {spec.binary_dir}/ "
            "folder (binary version) from https://www.cs.toronto.edu/~kriz/cifar.html"
        )
    return "the four files " + ", ".join(f"{n}.gz" for pair in IDX_FILES.values() for n in pair)


def _missing_message(name: str, data_dir: Any, failure: str) -> str:
    dirs = dataset_search_dirs(name, data_dir)
    searched = ", ".join(str(d) for d in dirs)
    files = _expected_files(name)
    for directory in dirs:  # a copy with files missing is named: "not found" would mislead
        partial = (
            (missing_cifar_files(directory, name) if name in CIFAR_VARIANTS
             else missing_idx_files(directory))
            if directory.is_dir() else None
        )  # fmt: skip
        if partial is not None:
            folder, missing = partial
            return (
                f"{name} in {folder} is incomplete ({', '.join(missing)} missing) and {failure}; "
                f"put {files} there in full"
            )
    if data_dir is not None:
        return (
            f"{name} not found in data_dir (searched {searched}) and {failure}; put {files} "
            "there, or leave data_dir unset to search the default places"
        )
    system = (
        "install it with `apt-get install dataset-fashion-mnist`, or "
        if name == "fashion-mnist"
        else ""
    )
    return (
        f"{name} not found (searched {searched}) and {failure}; {system}put {files} in a "
        "directory and pass --data-dir DIR (or set RESNET_DATA=DIR), or run once with internet "
        "access to download it"
    )
