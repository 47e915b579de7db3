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
