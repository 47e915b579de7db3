"""``resnet import``: a weight file becomes a checkpoint that ``predict`` labels images with.

torchvision's own resnet18 (random weights, saved as torchvision's files are) is the reference:
``predict`` on the imported checkpoint must give its probabilities on torchvision's input.
"""

import json

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from resnet.cli import main
from resnet.deploy.predict import predict
from resnet.engine.checkpoint import read_checkpoint_info
from resnet.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _torchvision_evaluation():
    """torchvision's ImageNet evaluation: resize the short side to 256, crop 224, normalise."""
    from torchvision import transforms

    steps = [transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()]
    return transforms.Compose([*steps, transforms.Normalize(MEAN, STD)])


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory):
    torch.manual_seed(0)
    reference = torchvision.models.resnet18()
    for module in reference.modules():  # statistics as a trained net's, not 0 and 1
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("weights") / "resnet18-f37072fd.pth"
    torch.save(reference.state_dict(), path)
    return path, reference.eval()


def test_predict_on_an_imported_torchvision_file_is_torchvisions(torchvision_file, tmp_path):
    path, reference = torchvision_file
    out = tmp_path / "imagenet-resnet18"
    assert main(["import", str(path), "--model", "resnet18", "--out", str(out)]) == 0
    info = read_checkpoint_info(out)
    categories = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    assert info["data_meta"]["class_names"] == categories
    assert info["data_meta"]["image_size"] == [224, 224]
    assert info["data_meta"]["crop_fraction"] == 0.875

    # torchvision's own evaluation: resize the short side to 256, crop 224, normalise.
    pixels = np.random.default_rng(0).integers(0, 256, (240, 300, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    [result] = predict(out, [tmp_path / "photo.png"], topk=3, device="cpu")
    evaluation = _torchvision_evaluation()
    with torch.no_grad():
        probabilities = reference(evaluation(Image.open(tmp_path / "photo.png"))[None]).softmax(1)[
            0
        ]
    top = probabilities.topk(3)
    assert [entry["index"] for entry in result["topk"]] == top.indices.tolist()
    assert [entry["prob"] for entry in result["topk"]] == pytest.approx(
        top.values.tolist(), abs=1e-5
    )
    assert result["label"] == categories[int(top.indices[0])]


def test_eval_of_an_imported_file_on_a_folder_named_by_wordnet_ids(torchvision_file, tmp_path,
                                                                   capsys):  # fmt: skip
    """ImageNet's validation set sorted into class folders names them n01440764, ...: scored by
    an imported torchvision file, top-1 is what torchvision's own evaluation gives."""
    from resnet.data.imagenet import imagenet_wnids

    path, reference = torchvision_file
    out = tmp_path / "imported"
    assert main(["import", str(path), "--model", "resnet18", "--out", str(out)]) == 0
    evaluation = _torchvision_evaluation()
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 256, (230 + 9 * i, 260, 3), dtype=np.uint8))
              for i in range(4)]  # fmt: skip
    with torch.no_grad():
        logits = reference(torch.stack([evaluation(im) for im in images])).double()
    predicted = logits.argmax(1).tolist()
    # Three images in their predicted class's folder, one elsewhere: torchvision's top-1 is 3/4.
    folders = [*predicted[:3], (predicted[3] + 1) % 1000]
    for i, (image, label) in enumerate(zip(images, folders)):
        (tmp_path / "val" / imagenet_wnids()[label]).mkdir(parents=True, exist_ok=True)
        image.save(tmp_path / "val" / imagenet_wnids()[label] / f"{i}.png")
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out), "--dataset", str(tmp_path / "val"),
                 "--device", "cpu"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "top-1 0.7500" in printed and "(4 images)" in printed
    absent = 1000 - len(set(folders))
    assert f"no images of {absent} class(es): tench, goldfish" in printed
    assert printed.count("\n") == 2 + len(set(folders))  # the classes present, listed

    # ImageNet-R's protocol: rank only the classes the folder holds, renormalised among them.
    flags = ["--dataset", str(tmp_path / "val"), "--device", "cpu", "--json"]
    assert main(["eval", "--checkpoint", str(out), *flags, "--present-classes-only"]) == 0
    result = json.loads(capsys.readouterr().out)
    present = sorted(set(folders))
    among = logits[:, present].log_softmax(1)
    positions = torch.tensor([present.index(label) for label in folders])
    assert result["classes_ranked"] == len(present)
    assert result["top1"] == (among.argmax(1) == positions).double().mean().item()
    assert result["loss"] == pytest.approx(-among[range(4), positions].mean().item(), rel=1e-4)
    assert main(["eval", "--checkpoint", str(out), *flags]) == 0
    whole = json.loads(capsys.readouterr().out)
    assert whole["classes_ranked"] == 1000 and whole["loss"] > result["loss"]

    # Kaggle's layout: the same images flat, their classes in LOC_val_solution.csv up the tree.
    flat = tmp_path / "kaggle" / "ILSVRC" / "Data" / "CLS-LOC" / "val"
    flat.mkdir(parents=True)
    rows = ["ImageId,PredictionString"]
    for i, label in enumerate(folders):
        wnid = imagenet_wnids()[label]
        (flat / f"ILSVRC2012_val_{i + 1:08d}.png").write_bytes(
            (tmp_path / "val" / wnid / f"{i}.png").read_bytes()
        )
        rows.append(f"ILSVRC2012_val_{i + 1:08d},{wnid} 0 0 10 10")
    (tmp_path / "kaggle" / "LOC_val_solution.csv").write_text("\n".join(rows))
    flags[1] = str(flat)
    assert main(["eval", "--checkpoint", str(out), *flags]) == 0
    kaggle = json.loads(capsys.readouterr().out)
    assert (kaggle["top1"], kaggle["loss"]) == (whole["top1"], pytest.approx(whole["loss"]))


def test_a_classifier_of_other_classes_needs_their_names(tmp_path, capsys):
    model = torchvision.models.resnet18(num_classes=3)
    path = tmp_path / "flowers.pth"
    torch.save(model.state_dict(), path)
    assert main(["import", str(path), "--model", "resnet18", "--out", str(tmp_path / "a")]) == 2
    assert "has 3 outputs, not ImageNet's 1,000: name them" in capsys.readouterr().err
    names = tmp_path / "names.txt"
    names.write_text("daisy\nrose\n")
    flags = ["--class-names", str(names), "--out", str(tmp_path / "b")]
    assert main(["import", str(path), "--model", "resnet18", *flags]) == 2
    assert "2 class names for a classifier of 3 outputs" in capsys.readouterr().err
    names.write_text("daisy\n\nrose\ntulip\n")  # a blank line shifted rose and tulip
    assert main(["import", str(path), "--model", "resnet18", *flags]) == 2
    assert "names.txt: line 2 is blank; give one name a line" in capsys.readouterr().err
    names.write_bytes(b"daisy\n\xff\xfe\n")
    assert main(["import", str(path), "--model", "resnet18", *flags]) == 2
    assert "--class-names " + str(names) + " is not UTF-8 text" in capsys.readouterr().err
    names.write_text("daisy\nrose\ntulip\n\n")
    assert main(["import", str(path), "--model", "resnet18", *flags]) == 0
    assert read_checkpoint_info(tmp_path / "b")["data_meta"]["class_names"] == [
        "daisy",
        "rose",
        "tulip",
    ]


def test_a_grey_classifier_takes_one_mean_and_one_std(tmp_path, capsys):
    """A 1-channel net was told "give one value per channel" while --mean took only three."""
    torch.manual_seed(0)
    from resnet import create_model

    path = tmp_path / "grey.pth"
    torch.save(create_model("resnet20", num_classes=3, in_chans=1).state_dict(), path)
    names = tmp_path / "names.txt"
    names.write_text("a\nb\nc\n")
    argv = ["import", str(path), "--model", "resnet20", "--set", "model_kwargs={in_chans: 1}",
            "--class-names", str(names)]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "x"), "--mean", "0.5,0.5"]) == 2
    assert "expected 1 or 3 comma-separated values" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "x"), "--mean", "0.5", "--std", "0.25"]) == 0
    meta = read_checkpoint_info(tmp_path / "x")["data_meta"]
    assert (meta["channels"], meta["mean"], meta["std"]) == (1, [0.5], [0.25])


def test_what_cannot_become_a_checkpoint_is_refused(torchvision_file, tmp_path, capsys):
    path, _ = torchvision_file
    backbone = tmp_path / "backbone.pth"
    torch.save({k: v for k, v in torch.load(path).items() if not k.startswith("fc.")}, backbone)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    cases = [
        ([str(backbone), "--out", str(tmp_path / "c")], "holds no classifier (fc)"),
        ([str(path), "--out", str(tmp_path / "full")], "exists and is not an empty folder"),
        ([str(path), "--out", str(tmp_path / "d"), "--set", "lr=0.1"], "model_kwargs={...} only"),
        (
            [str(path), "--out", str(tmp_path / "e"), "--set", "model_kwargs={num_classes: 10}"],
            "num_classes=10, but the file's classifier has 1000 outputs",
        ),
    ]
    for flags, message in cases:
        assert main(["import", "--model", "resnet18", *flags]) == 2
        assert message in capsys.readouterr().err
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert not any((tmp_path / name).exists() for name in "cde")


def test_a_hub_folders_configs_set_what_was_not_given(tmp_path):
    """timm's save_for_hf folder (pretrained_cfg) and a transformers folder (id2label,
    preprocessor_config.json) say how their nets were fed; explicit values still win."""
    import json

    import timm
    from timm.models._hub import save_for_hf  # timm's own writer of hub folders

    from resnet.engine.imported import import_weights

    timm_net = timm.create_model("resnet18", num_classes=3)
    timm_net.pretrained_cfg = {
        **timm_net.pretrained_cfg,
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
        "input_size": (3, 160, 160),
    }
    labels = {"label_names": ["cat", "dog", "fox"]}  # written as config.json's label_names
    save_for_hf(timm_net, str(tmp_path / "timm"), model_config=labels, safe_serialization=True)
    imported = import_weights(tmp_path / "timm", "resnet18", tmp_path / "a", std=(0.2, 0.2, 0.2))
    meta = imported.meta
    assert (meta.mean, meta.std, meta.image_size) == ((0.5,) * 3, (0.2,) * 3, (160, 160))
    assert meta.class_names == ["cat", "dog", "fox"]
    assert meta.crop_fraction == timm_net.pretrained_cfg["crop_pct"]  # timm's 0.95 here
    assert imported.from_hub == ["class_names", "crop_fraction", "image_size", "mean"]

    from transformers import ResNetConfig, ResNetForImageClassification

    labels = {"0": "tench, Tinca tinca", "1": "goldfish, Carassius auratus"}
    config = ResNetConfig(layer_type="basic", depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512])
    config.id2label, config.label2id = labels, {v: int(k) for k, v in labels.items()}
    ResNetForImageClassification(config).save_pretrained(tmp_path / "hf")
    processor = {  # microsoft/resnet-50's preprocessor_config.json, its fields and layout
        "crop_pct": 0.875,
        "do_normalize": True,
        "do_resize": True,
        "image_mean": [0.485, 0.456, 0.406],
        "image_processor_type": "ConvNextImageProcessor",
        "image_std": [0.229, 0.224, 0.225],
        "resample": 3,
        "size": {"shortest_edge": 192},
    }
    (tmp_path / "hf" / "preprocessor_config.json").write_text(json.dumps(processor))
    meta = import_weights(tmp_path / "hf", "resnet18", tmp_path / "b").meta
    assert meta.class_names == list(labels.values()) and meta.image_size == (192, 192)
    assert meta.crop_fraction == 0.875 and meta.mean == (0.485, 0.456, 0.406)
    # A processor that skips a step feeds the net otherwise: the statistics say how.
    for changes, mean, std in [
        ({"do_normalize": False}, (0.0,) * 3, (1.0,) * 3),
        ({"do_rescale": False}, (0.485 / 255, 0.456 / 255, 0.406 / 255),
         (0.229 / 255, 0.224 / 255, 0.225 / 255)),
        ({"rescale_factor": 1 / 127.5, "image_mean": [1.0] * 3, "image_std": [1.0] * 3},
         (0.5,) * 3, (0.5,) * 3),
    ]:  # fmt: skip
        (tmp_path / "hf" / "preprocessor_config.json").write_text(
            json.dumps({**processor, **changes})
        )
        out = tmp_path / f"b{len(changes)}{sorted(changes)[0]}"
        meta = import_weights(tmp_path / "hf", "resnet18", out).meta
        assert meta.mean == pytest.approx(mean) and meta.std == pytest.approx(std)


def test_a_hubs_label_names_are_ids_and_its_descriptions_words(tmp_path):
    """timm's label_names are ids ("ie synset for ImageNet"), label_descriptions their words:
    ImageNet's are shown as torchvision's words, others as the hub's, ids kept for scoring."""
    import json

    import timm
    from timm.models._hub import save_for_hf

    from resnet.data.imagenet import imagenet_categories, imagenet_wnids
    from resnet.engine.imported import import_weights

    wnids = list(imagenet_wnids())
    labels = {"label_names": wnids, "label_descriptions": {w: f"lemma {w}" for w in wnids}}
    save_for_hf(timm.create_model("resnet18"), str(tmp_path / "in1k"), model_config=labels)
    meta = import_weights(tmp_path / "in1k", "resnet18", tmp_path / "a").meta
    assert meta.class_names == list(imagenet_categories()) and meta.class_ids == wnids

    labels = {"label_names": ["m03", "m01", "m02"],
              "label_descriptions": {"m01": "owl", "m02": "hen", "m03": "jay"}}  # fmt: skip
    save_for_hf(timm.create_model("resnet18", num_classes=3), str(tmp_path / "birds"),
                model_config=labels)  # fmt: skip
    imported = import_weights(tmp_path / "birds", "resnet18", tmp_path / "b")
    assert imported.meta.class_names == ["jay", "owl", "hen"]
    assert imported.meta.class_ids == ["m03", "m01", "m02"]
    assert "class_ids" in imported.from_hub
    given = import_weights(tmp_path / "birds", "resnet18", tmp_path / "c", class_names="xyz").meta
    assert given.class_names == ["x", "y", "z"] and given.class_ids == []  # the hub's ids go too

    config = tmp_path / "birds" / "config.json"
    content = json.loads(config.read_text())
    content["label_names"] = {"0": "m03", "2": "m02", "3": "m01"}  # a gap at 1
    config.write_text(json.dumps(content))
    with pytest.raises(ConfigError, match="names its classes with gaps or non-strings; name "
                       "them yourself: --class-names FILE"):  # fmt: skip
        import_weights(tmp_path / "birds", "resnet18", tmp_path / "d")


def test_a_bit_file_defaults_to_bits_input(tmp_path):
    """BiT's nets take [-1, 1] (mean and std 0.5), whatever folder the file came in."""
    import timm

    from resnet.engine.imported import import_weights

    path = tmp_path / "bit.pth"
    torch.save(timm.create_model("resnetv2_50x1_bit").state_dict(), path)
    meta = import_weights(path, "bit_resnet50x1", tmp_path / "bit").meta
    assert (meta.mean, meta.std, meta.crop_fraction) == ((0.5,) * 3, (0.5,) * 3, 1.0)
    meta = import_weights(path, "bit_resnet50x1", tmp_path / "given", mean=(0.4, 0.4, 0.4)).meta
    assert (meta.mean, meta.std) == ((0.4,) * 3, (0.5,) * 3)


def test_a_clip_tower_is_not_a_classifier(tmp_path, capsys):
    from resnet import create_model

    path = tmp_path / "rn50.pth"  # in our names: what load_weights makes of OpenAI's RN50
    torch.save(create_model("resnet50_clip").state_dict(), path)
    flags = ["--model", "resnet50_clip", "--out", str(tmp_path / "clip")]
    assert main(["import", str(path), *flags]) == 2
    assert "a CLIP image tower, whose fc is the embedding projection" in capsys.readouterr().err
    assert not (tmp_path / "clip").exists()
