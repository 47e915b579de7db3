import json

import torch

from resnet.cli import main
from resnet.engine.checkpoint import save_checkpoint
from resnet.models import create_model


def test_exp_block_writes_json_and_png(tmp_path, capsys):
    assert main(["exp", "block", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "(1, 3, 64, 64)" in out
    data = json.loads((tmp_path / "block.json").read_text())
    assert data["output_shape"] == [1, 3, 64, 64] and "tensors" not in data
    assert (tmp_path / "block.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_options_exit_2(tmp_path, capsys):
    assert main(["exp", "gradflow", "--depth", "7"]) == 2
    assert main(["demo", "--bogus"]) == 2
    assert main(["exp", "nosuch"]) == 2
    capsys.readouterr()
    assert main(["exp", "lesion", "--checkpoint", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("resnet: error:") and "\n" not in err


def test_exp_lesion_and_landscape_on_a_checkpoint(tmp_path, tiny_npz, capsys):
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=4, in_chans=1)
    save_checkpoint(tmp_path / "ckpt", model, data_meta=None, epoch=0, step=0, metrics={})
    common = ["--dataset", tiny_npz, "--eval-subset", "16", "--device", "cpu", "--quiet"]
    ckpt = f"res={tmp_path / 'ckpt'}"
    assert main(["exp", "lesion", "--checkpoint", ckpt, *common, "--out-dir", str(tmp_path)]) == 0
    lesion = json.loads((tmp_path / "lesion.json").read_text())
    assert lesion["networks"][0]["label"] == "res" and lesion["eval_samples"] == 16
    args = ["exp", "landscape", "--checkpoint", ckpt, "--points", "3", "--no-2d", *common]
    assert main([*args, "--out-dir", str(tmp_path)]) == 0
    landscape = json.loads((tmp_path / "landscape.json").read_text())
    assert landscape["networks"][0]["alphas"] == [-1.0, 0.0, 1.0]
    assert (tmp_path / "landscape.png").is_file() and (tmp_path / "lesion.png").is_file()
    assert main(["exp", "landscape", "--checkpoint", ckpt, "--points", "4", *common]) == 2
