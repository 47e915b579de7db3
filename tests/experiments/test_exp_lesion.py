import torch

from resnet.experiments.common import eval_batches, evaluate_loss_accuracy
from resnet.experiments.lesion import blocks_removed, lesion_blocks, list_blocks
from resnet.models import create_model


def _model(name: str):
    torch.manual_seed(0)
    model = create_model(name, num_classes=4, in_chans=1)
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 1, 8, 8))
    return model.eval()


def test_downsampling_blocks_are_found_in_both_networks():
    for name in ("resnet20", "plain20"):
        blocks = list_blocks(_model(name), torch.randn(2, 1, 8, 8))
        assert len(blocks) == 9
        assert [b["name"] for b in blocks if b["downsampling"]] == ["layer2.0", "layer3.0"]


def test_deleting_no_block_reproduces_the_full_accuracy(tiny_dataset):
    model = _model("resnet20")
    batches = eval_batches(tiny_dataset, batch_size=16)
    full = evaluate_loss_accuracy(model, batches)
    with blocks_removed(model, []):
        assert evaluate_loss_accuracy(model, batches) == full
    result = lesion_blocks(model, batches)
    assert result["baseline_accuracy"] == full["accuracy"]
    assert result["baseline_loss"] == full["loss"]
    assert result["skipped_blocks"] == ["layer2.0", "layer3.0"]
    assert sum(not r["skipped"] for r in result["blocks"]) == 7


def test_deleting_a_block_changes_the_output_and_is_undone():
    for name in ("resnet20", "plain20"):
        model = _model(name)
        x = torch.randn(4, 1, 8, 8)
        with torch.no_grad():
            before = model(x)
            with blocks_removed(model, [(0, 1)]):
                assert isinstance(model.layer1[1], torch.nn.Identity)
                lesioned = model(x)
            after = model(x)
        assert not torch.allclose(before, lesioned)
        torch.testing.assert_close(after, before, rtol=0, atol=0)


def _saved(tmp_path, name, meta):
    from resnet.engine.checkpoint import save_checkpoint

    model = _model("resnet20")
    save_checkpoint(tmp_path / name / "best", model, data_meta=meta, epoch=1, step=1, metrics={},
                    config={})  # fmt: skip
    return tmp_path / name


def test_lesion_and_landscape_read_the_data_as_the_checkpoint_was_trained(tmp_path, tiny_npz):
    """The same test images with the classes stored in reverse order score the same: labels
    are matched by name and normalised with the checkpoint's statistics, not the file's. A
    second checkpoint trained on other classes is refused: both are scored on one set of
    batches."""
    import numpy as np
    import pytest

    from resnet.data import DatasetMeta, load_dataset
    from resnet.errors import DataError
    from resnet.experiments.landscape import run_landscape
    from resnet.experiments.lesion import run_lesion

    meta = load_dataset(tiny_npz, "train").meta
    ckpt = _saved(tmp_path, "a", meta)
    with np.load(tiny_npz) as arrays:
        saved = {key: arrays[key] for key in arrays.files}
    reverse = {
        "train_images": saved["train_images"][:8],  # other train statistics than the checkpoint's
        "train_labels": 3 - saved["train_labels"][:8],
        "test_labels": 3 - saved["test_labels"],
        "class_names": np.array(["d", "c", "b", "a"]),
    }
    reversed_npz = tmp_path / "reversed.npz"
    np.savez(reversed_npz, **{**saved, **reverse})
    assert load_dataset(str(reversed_npz)).meta.mean != meta.mean
    options = {"eval_subset": None, "progress": False}
    same = run_lesion({"r": ckpt}, dataset=tiny_npz, **options)["networks"][0]
    flipped = run_lesion({"r": ckpt}, dataset=str(reversed_npz), **options)["networks"][0]
    assert flipped["baseline_accuracy"] == same["baseline_accuracy"]
    assert flipped["baseline_loss"] == pytest.approx(same["baseline_loss"], rel=1e-6)
    other = _saved(
        tmp_path, "b", DatasetMeta("other", list("wxyz"), 1, (8, 8), meta.mean, meta.std)
    )
    for experiment in (run_lesion, run_landscape):
        with pytest.raises(DataError, match="b was trained on other data .other: 4 classes"):
            experiment({"a": ckpt, "b": other}, dataset=tiny_npz, **options)
