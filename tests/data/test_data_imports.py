"""The data package's imports point one way and use only public names; its API is intact."""

import ast
from pathlib import Path

import pytest

import resnet.data

DATA_DIR = Path(resnet.data.__file__).parent
MODULES = sorted(p.stem for p in DATA_DIR.glob("*.py") if p.stem != "__init__")


def imports_of(module: str) -> list[tuple[str, str]]:
    """(imported module, imported name) for every import in ``module``, lazy ones included."""
    tree = ast.parse((DATA_DIR / f"{module}.py").read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names]
    return found


def data_graph() -> dict[str, set[str]]:
    graph = {}
    for module in MODULES:
        targets = set()
        for imported, name in imports_of(module):
            if imported == "resnet.data" and name in MODULES:  # from resnet.data import idx
                targets.add(name)
            elif imported.startswith("resnet.data."):
                targets.add(imported.split(".")[2])
        graph[module] = targets
    return graph


def test_data_modules_import_each_other_one_way():
    graph = data_graph()
    assert "folder" in graph["loader"] and "loader" not in graph["folder"]  # the old cycle
    state: dict[str, str] = {}

    def visit(module, chain):
        if state.get(module) == "done":
            return
        assert state.get(module) != "active", f"import cycle: {' -> '.join([*chain, module])}"
        state[module] = "active"
        for target in sorted(graph[module]):
            visit(target, [*chain, module])
        state[module] = "done"

    for module in MODULES:
        visit(module, [])


@pytest.mark.parametrize("module", MODULES)
def test_no_private_names_are_imported_from_other_modules(module):
    private = [
        f"{imported}.{name}"
        for imported, name in imports_of(module)
        if imported.startswith("resnet") and name.startswith("_")
    ]
    assert private == []


def test_public_api_is_unchanged():
    before = {
        "ArrayDataset", "CLASS_NAMES", "DatasetMeta", "EpochPlan", "FolderLoader",
        "ImageFolderDataset", "TensorLoader", "batch_crop_flip", "channel_mean_std",
        "dataset_search_dirs", "epoch_generator", "list_datasets", "load_dataset",
        "load_image_folder", "make_loader", "preprocess_images", "read_idx", "seeded_split",
        "write_idx",
    }  # fmt: skip
    added = {
        "DEFAULT_VAL_FRACTION", "open_image", "input_files", "as_trained", "mirror_keeps_class",
        "resize_arrays",
    }  # fmt: skip
    assert before | added == set(resnet.data.__all__)
    assert all(hasattr(resnet.data, name) for name in resnet.data.__all__)
    from resnet.data.loader import epoch_generator
    from resnet.data.preprocess import open_image

    assert epoch_generator is resnet.data.epoch_generator and open_image is resnet.data.open_image
