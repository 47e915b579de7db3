"""Datasets and loaders: IDX (MNIST, Fashion-MNIST), CIFAR-10/100, image folders, MedMNIST ``.npz``.

In-memory datasets are :class:`ArrayDataset` (one uint8 tensor) and train through the
:class:`TensorLoader` fast path; image folders go through a DataLoader with workers. Both yield
``(x, y)``: x normalized float (B, C, ...) on the device, y int64 (B,).
"""

from resnet.data.align import as_trained
from resnet.data.folder import ImageFolderDataset, load_image_folder
from resnet.data.folder_loader import FolderLoader
from resnet.data.idx import read_idx, write_idx
from resnet.data.loader import (
    EpochPlan,
    TensorLoader,
    batch_crop_flip,
    make_loader,
    mirror_keeps_class,
)
from resnet.data.meta import (
    DEFAULT_VAL_FRACTION,
    ArrayDataset,
    DatasetMeta,
    channel_mean_std,
    seeded_split,
)
from resnet.data.preprocess import input_files, open_image, preprocess_images, resize_arrays
from resnet.data.registry import CLASS_NAMES, dataset_search_dirs, list_datasets, load_dataset
from resnet.data.seeding import epoch_generator

__all__ = [
    "ArrayDataset",
    "as_trained",
    "CLASS_NAMES",
    "DEFAULT_VAL_FRACTION",
    "DatasetMeta",
    "EpochPlan",
    "FolderLoader",
    "ImageFolderDataset",
    "TensorLoader",
    "batch_crop_flip",
    "channel_mean_std",
    "dataset_search_dirs",
    "epoch_generator",
    "list_datasets",
    "load_dataset",
    "load_image_folder",
    "make_loader",
    "mirror_keeps_class",
    "open_image",
    "preprocess_images",
    "resize_arrays",
    "input_files",
    "read_idx",
    "seeded_split",
    "write_idx",
]
