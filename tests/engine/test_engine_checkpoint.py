"""Checkpoint round trip and the errors for broken files."""

from __future__ import annotations

import json

import pytest
import torch

from resnet.data import DatasetMeta
from resnet.engine.checkpoint import (
    create_model_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from resnet.errors import WeightsError
from resnet.models import create_model

META = DatasetMeta("bands", ["a", "b", "c"], 1, (16, 16), (0.5,), (0.25,))


def _saved(tmp_path, name="best", **kwargs):
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=3, in_chans=1, norm_layer="group")
    model.fc.bias.data.uniform_()
    save_checkpoint(
        tmp_path / name, model, data_meta=META, epoch=3, step=30, metrics={"acc": 0.5}, **kwargs
    )
    return model


def test_round_trip(tmp_path):
    model = _saved(tmp_path, extra_state={"optimizer": {"x": torch.ones(2)}})
    assert {p.name for p in tmp_path.iterdir()} == {
        "best.safetensors",
        "best.json",
        "best.state.pt",
    }
    for path in (
        tmp_path,
        tmp_path / "best.safetensors",
        tmp_path / "best.json",
        tmp_path / "best",
    ):
        loaded, info = load_checkpoint(path)
        for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
            assert torch.equal(a, b), name
        assert info["model_name"] == "resnet20" and info["epoch"] == 3 and info["step"] == 30
        assert info["model_kwargs"] == {
            "num_classes": 3, "in_chans": 1, "norm_layer": "group", "shortcut_pad": "both"
        }  # fmt: skip
        assert DatasetMeta.from_dict(info["data_meta"]) == META
        assert info["metrics"] == {"acc": 0.5} and info["format_version"] == 1
    rebuilt = create_model_from_checkpoint(tmp_path)
    assert not rebuilt.training
    x = torch.randn(2, 1, 16, 16)
    torch.testing.assert_close(rebuilt(x), model.eval()(x))


def test_directory_falls_back_to_last(tmp_path):
    _saved(tmp_path, name="last")
    _, info = load_checkpoint(tmp_path)
    assert info["step"] == 30


def test_shared_storage_is_saved(tmp_path):
    model = create_model("resnet20", num_classes=3, in_chans=1)
    model.extra = torch.nn.Linear(64, 3)
    model.extra.weight = model.fc.weight  # tied weights share storage
    save_checkpoint(tmp_path / "tied", model, data_meta=None, epoch=0, step=0, metrics={})
    from safetensors.torch import load_file

    state = load_file(str(tmp_path / "tied.safetensors"))
    assert torch.equal(state["extra.weight"], state["fc.weight"])


def test_corrupt_weights(tmp_path):
    _saved(tmp_path)
    weights = tmp_path / "best.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(WeightsError, match="best.safetensors: corrupt or truncated"):
        load_checkpoint(tmp_path)


def test_corrupt_and_missing_json(tmp_path):
    _saved(tmp_path)
    (tmp_path / "best.json").write_text("{not json")
    with pytest.raises(WeightsError, match="best.json: not a readable"):
        load_checkpoint(tmp_path / "best.safetensors")
    (tmp_path / "best.json").write_text(json.dumps({"model_name": "resnet20"}))
    with pytest.raises(WeightsError, match="lacks format_version"):
        load_checkpoint(tmp_path)
    with pytest.raises(WeightsError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nothing.safetensors")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="empty: run directory holds no best.json/last.json"):
        load_checkpoint(tmp_path / "empty")


def test_weights_of_another_model(tmp_path):
    _saved(tmp_path)
    info = json.loads((tmp_path / "best.json").read_text())
    info["model_name"] = "resnet32"
    (tmp_path / "best.json").write_text(json.dumps(info))
    with pytest.raises(WeightsError, match="do not fit resnet32"):
        load_checkpoint(tmp_path)
