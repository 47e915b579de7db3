"""``resnet explain``: PNG overlays from a checkpoint, one-line errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnet import create_model
from resnet.cli import main
from resnet.data import DatasetMeta
from resnet.engine.checkpoint import save_checkpoint
from resnet.errors import ConfigError
from resnet.explain.gradcam import explain_images
from resnet.explain.overlay import DISPLAY_SIDE, overlay_heatmap

META = DatasetMeta(
    name="tiny-fashion",
    class_names=["tshirt", "trouser", "pullover"],
    channels=1,
    image_size=(28, 28),
    mean=(0.286,),
    std=(0.353,),
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=3, in_chans=1)
    stem = tmp_path_factory.mktemp("run") / "best"
    save_checkpoint(stem, model, data_meta=META, epoch=1, step=1, metrics={})
    return stem


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    grey = tmp_path / "grey.png"
    Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(grey)
    colour = tmp_path / "colour.jpg"  # RGB and 40x60: converted to L and resized by the data layer
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(colour)
    return [grey, colour]


def test_explain_writes_one_overlay_per_image(checkpoint, images, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["explain", "--checkpoint", str(checkpoint), *map(str, images), "--out", str(out)]
    assert main([*argv, "--json", "--class-idx", "2", "--target-layer", "layer2"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["class_idx"] for r in rows] == [2, 2] and rows[0]["label"] == "pullover"
    scale = DISPLAY_SIDE // 28
    for row in rows:
        with Image.open(row["out"]) as png:
            assert png.format == "PNG" and png.mode == "RGB"
            assert png.size[0] == 2 * 28 * scale + 4  # input | overlay, side by side
    assert sorted(p.name for p in out.iterdir()) == ["colour_gradcam.png", "grey_gradcam.png"]


def test_the_class_to_explain_is_named_or_numbered(checkpoint, images, tmp_path, capsys):
    """``--class-idx pullover`` is class 2, as ``--class-idx 2`` is (argparse refused names);
    an unknown name or a bool is one error naming the classes."""
    rows = explain_images(checkpoint, images[:1], out_dir=tmp_path / "a", class_idx="pullover")
    assert rows[0]["class_idx"] == 2 and rows[0]["label"] == "pullover"
    argv = ["explain", "--checkpoint", str(checkpoint), str(images[0]), "--out", str(tmp_path)]
    assert main([*argv, "--json", "--class-idx", "pullover"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["class_idx"] == 2
    assert main([*argv, "--class-idx", "pulover"]) == 2
    assert "did you mean 'pullover'?" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="not a class of the checkpoint"):
        explain_images(checkpoint, images[:1], out_dir=tmp_path / "b", class_idx=True)


def test_a_class_name_given_twice_is_refused_not_guessed(images, tmp_path):
    """ImageNet names "crane" twice (134 and 517): a name that two classes share picked the
    first of them silently."""
    import dataclasses

    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=3, in_chans=1)
    meta = dataclasses.replace(META, class_names=["crane", "trouser", "crane"])
    stem = tmp_path / "run" / "best"
    save_checkpoint(stem, model, data_meta=meta, epoch=1, step=1, metrics={})
    with pytest.raises(ConfigError, match="'crane' names 2 classes of the checkpoint \\(0, 2\\)"):
        explain_images(stem, images[:1], out_dir=tmp_path / "out", class_idx="crane")
    rows = explain_images(stem, images[:1], out_dir=tmp_path / "out", class_idx="2")
    assert rows[0]["class_idx"] == 2 and rows[0]["label"] == "crane"


def test_one_path_on_its_own_is_one_input(checkpoint, images, tmp_path):
    """A str used to be read as one path per letter."""
    for single in (str(images[0]), images[0]):
        rows = explain_images(checkpoint, single, out_dir=tmp_path / "out")
        assert [row["path"] for row in rows] == [str(images[0])]


def test_folders_and_repeated_names_give_one_overlay_each(checkpoint, images, tmp_path, capsys):
    """A folder stands for its images; inputs that share a stem never overwrite each other."""
    for name in ["a/x.png", "b/x.png", "b/x-2.png"]:
        (tmp_path / "dir" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "dir" / name).write_bytes(images[0].read_bytes())
    out = tmp_path / "out"
    argv = ["explain", "--checkpoint", str(checkpoint), str(tmp_path / "dir"), str(images[0])]
    assert main([*argv, "--out", str(out), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(row["path"].removeprefix(str(tmp_path)), Path(row["out"]).name) for row in rows] == [
        ("/dir/a/x.png", "x_gradcam.png"),
        ("/dir/b/x-2.png", "x-2_gradcam.png"),
        ("/dir/b/x.png", "x-3_gradcam.png"),
        ("/grey.png", "grey_gradcam.png"),
    ]
    assert len(list(out.iterdir())) == 4


@pytest.mark.parametrize(
    "inputs, out, message",
    [
        (["dir"], "dir", "--out {out} is inside the input folder {tmp}/dir"),
        (["dir"], "dir/sub/overlays", "is inside the input folder {tmp}/dir: the next run"),
        (["dir/x.png", "pair/x_gradcam.png"], "pair", "the overlay {tmp}/pair/x_gradcam.png would"),
    ],
    ids=["out-is-the-folder", "out-inside-the-folder", "overlay-replaces-an-input"],
)
def test_overlays_never_replace_or_join_the_inputs(
    checkpoint, images, tmp_path, capsys, inputs, out, message
):
    """Overlays in an input folder would be explained on the next run (and a same-named input
    replaced); refused before anything is written."""
    for name in ("dir/x.png", "pair/x_gradcam.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(images[0].read_bytes())
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    inputs, out = [str(tmp_path / item) for item in inputs], str(tmp_path / out)
    assert main(["explain", "--checkpoint", str(checkpoint), *inputs, "--out", out]) == 2
    expected = message.format(out=out, tmp=tmp_path)
    assert expected in capsys.readouterr().err.strip().splitlines()[-1]
    with pytest.raises(ConfigError, match="choose"):
        explain_images(checkpoint, inputs, out_dir=out)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert (
        main(["explain", "--checkpoint", str(checkpoint), *inputs, "--out", str(tmp_path / "o")])
        == 0
    )


@pytest.mark.parametrize("alpha", ["-0.1", "1.5", "nan"])
def test_opacity_outside_0_to_1_exits_2(checkpoint, images, tmp_path, capsys, alpha):
    argv = ["explain", "--checkpoint", str(checkpoint), str(images[0]), "--alpha", alpha]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"argument --alpha: expected a finite number from 0 to 1, got '{alpha}'" in last
    with pytest.raises(ConfigError, match=f"--alpha {float(alpha)} is the heatmap's opacity"):
        explain_images(checkpoint, images, out_dir=tmp_path / "out", alpha=float(alpha))
    assert not (tmp_path / "out").exists()


def test_overlay_is_a_blend_of_image_and_jet_colours():
    image = np.full((4, 4, 3), 100, dtype=np.uint8)
    heatmap = np.zeros((4, 4))
    heatmap[0, 0] = 1.0
    blended = overlay_heatmap(image, heatmap, alpha=0.5)
    assert blended.shape == (4, 4, 3) and blended.dtype == np.uint8
    # jet maps 1.0 to dark red and 0.0 to dark blue
    assert blended[0, 0, 0] > blended[0, 0, 2] and blended[1, 1, 2] > blended[1, 1, 0]


@pytest.mark.parametrize(
    ("make_bad", "expected"),
    [
        (lambda d: (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really"), "broken.png"),
        (lambda d: None, "absent.png"),
    ],
)
def test_bad_images_exit_2_naming_the_file(checkpoint, tmp_path, capsys, make_bad, expected):
    make_bad(tmp_path)
    argv = ["explain", "--checkpoint", str(checkpoint), str(tmp_path / expected)]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("resnet: error:") and expected in err and len(err.splitlines()) == 1


def test_bad_class_index_and_weights_exit_2(checkpoint, images, tmp_path, capsys):
    argv = ["explain", "--checkpoint", str(checkpoint), str(images[0]), "--out", str(tmp_path)]
    assert main([*argv, "--class-idx", "7"]) == 2
    assert "out of range" in capsys.readouterr().err
    broken = tmp_path / "broken"
    (tmp_path / "broken.json").write_text(checkpoint.with_suffix(".json").read_text())
    (tmp_path / "broken.safetensors").write_bytes(b"truncated")
    assert main(["explain", "--checkpoint", str(broken), str(images[0])]) == 2
    err = capsys.readouterr().err.strip()
    assert "broken.safetensors" in err and len(err.splitlines()) == 1


def test_volumes_of_the_wrong_shape_exit_2(tmp_path, capsys):
    model = create_model("resnet10_3d", num_classes=2, in_chans=1, widen_factor=0.125)
    volume_meta = DatasetMeta("vols", ["ball", "cube"], 1, (16, 16, 16), (0.3,), (0.2,))
    save_checkpoint(tmp_path / "vol", model, data_meta=volume_meta, epoch=0, step=0, metrics={})
    good, wrong = tmp_path / "good.npy", tmp_path / "wrong.npy"
    np.save(good, np.zeros((16, 16, 16), dtype=np.uint8))
    np.save(wrong, np.zeros((2, 16, 16, 16), dtype=np.uint8))  # two channels
    base = ["explain", "--checkpoint", str(tmp_path / "vol"), "--out", str(tmp_path / "out")]
    assert main([*base, str(good)]) == 0
    assert (tmp_path / "out" / "good_gradcam.png").is_file()
    capsys.readouterr()
    assert main([*base, str(wrong)]) == 2
    err = capsys.readouterr().err.strip()
    assert "wrong.npy" in err and "(16, 16, 16)" in err and len(err.splitlines()) == 1
