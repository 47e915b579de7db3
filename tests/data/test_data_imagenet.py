"""ImageNet's classes by WordNet id: a folder named by ids (ImageNet's validation set in class
folders, Imagenette, ImageNet-R) scores a classifier that names them by words."""

import os
from dataclasses import replace

import pytest
import torchvision

from resnet.data import as_trained, load_dataset
from resnet.data.imagenet import imagenet_categories, imagenet_class_ids, imagenet_wnids, is_wnid
from resnet.data.meta import DatasetMeta
from resnet.errors import DataError

TENCH, GOLDFISH = "n01440764", "n01443537"


def test_the_ids_are_imagenets_in_its_classifiers_order():
    wnids = imagenet_wnids()
    assert len(set(wnids)) == 1000 and list(wnids) == sorted(wnids)
    assert all(is_wnid(w) for w in wnids) and not is_wnid("n0144076") and not is_wnid("tench")
    words = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    assert imagenet_categories() == tuple(words)
    # Known pairs, one per region of the list: a shifted or reordered list fails them.
    for index, wnid, word in [(0, TENCH, "tench"), (1, GOLDFISH, "goldfish"),
                              (134, "n02012849", "crane bird"), (517, "n03126707", "crane"),
                              (999, "n15075141", "toilet tissue")]:  # fmt: skip
        assert (wnids[index], words[index]) == (wnid, word)
    # timm's own synset and lemma lists agree word by word (torchvision renamed two duplicates).
    timm_info = pytest.importorskip("timm").__path__[0] + "/data/_info/"
    with open(timm_info + "imagenet_synset_to_lemma.txt") as lemmas:
        lemma = dict(line.rstrip("\n").split("\t") for line in lemmas)
    agree = [w.lower() in lemma[i].lower() for i, w in zip(wnids, words)]
    assert sum(agree) == 998 and not agree[134] and not agree[639]


def test_class_ids_are_known_for_imagenets_names_only():
    assert imagenet_class_ids(list(imagenet_categories())) == imagenet_wnids()
    assert imagenet_class_ids(imagenet_wnids()) == imagenet_wnids()
    assert imagenet_class_ids(["cat", "dog"]) == ()
    shuffled = list(imagenet_categories())
    shuffled[0], shuffled[1] = shuffled[1], shuffled[0]
    assert imagenet_class_ids(shuffled) == ()  # another order is another classifier


def _imagenet_meta(**changes) -> DatasetMeta:
    meta = DatasetMeta("imported:resnet18.pth", list(imagenet_categories()), 3, (8, 8),
                       (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 0.875)  # fmt: skip
    return replace(meta, **changes)


def test_a_folder_named_by_wnids_scores_a_classifier_named_by_words(tmp_path, write_images):
    write_images(tmp_path / "val", classes=[TENCH, GOLDFISH], per_class=2, size=(8, 8))
    data = load_dataset(str(tmp_path / "val"), "train", val_fraction=0.0)
    # ids recorded in the checkpoint (resnet import writes them), or known from the words
    for meta in (_imagenet_meta(class_ids=list(imagenet_wnids())), _imagenet_meta()):
        scored = as_trained(data, meta, "val")
        assert sorted(label for _, label in scored.samples) == [0, 0, 1, 1]
        assert scored.meta.class_names[:2] == ["tench", "goldfish"]
    # A folder named by words still scores; so does one mixing both.
    write_images(tmp_path / "words", classes=["goldfish", TENCH], per_class=1, size=(8, 8))
    data = load_dataset(str(tmp_path / "words"), "train", val_fraction=0.0)
    assert sorted(label for _, label in as_trained(data, _imagenet_meta(), "w").samples) == [0, 1]


def test_ids_of_any_dataset_align_and_unknown_or_shared_names_are_refused(tmp_path, write_images):
    write_images(tmp_path / "ids", classes=["m02", "m01"], per_class=1, size=(8, 8))
    data = load_dataset(str(tmp_path / "ids"), "train", val_fraction=0.0)
    meta = replace(data.meta, class_names=["owl", "hen"], class_ids=["m01", "m02"])
    scored = as_trained(data, meta, "ids")  # the folder sorts m01 first: label 0 is "owl"
    assert [label for _, label in scored.samples] == [0, 1]

    write_images(tmp_path / "unknown", classes=["n99999999"], per_class=1, size=(8, 8))
    unknown = load_dataset(str(tmp_path / "unknown"), "train", val_fraction=0.0)
    with pytest.raises(DataError, match=r"n99999999 that the checkpoint was not trained on .*"
                       r"or by id: n01440764, n01443537"):  # fmt: skip
        as_trained(unknown, _imagenet_meta(), "unknown")

    classic = list(imagenet_categories())  # the classic list: two classes named "crane"
    classic[134] = "crane"
    write_images(tmp_path / "crane", classes=["crane"], per_class=1, size=(8, 8))
    crane = load_dataset(str(tmp_path / "crane"), "train", val_fraction=0.0)
    meta = _imagenet_meta(class_names=classic, class_ids=list(imagenet_wnids()))
    shared = r"'crane' names 2 of the checkpoint's classes \(134, 517\)"
    fix = r"; name its folder by the class's id \(n02012849 or n03126707\)"
    with pytest.raises(DataError, match=shared + fix):
        as_trained(crane, meta, "crane")


def test_class_ids_round_trip_and_bad_ones_are_refused():
    meta = _imagenet_meta(class_ids=list(imagenet_wnids()))
    assert DatasetMeta.from_dict(meta.to_dict()) == meta
    old = meta.to_dict()
    del old["class_ids"]  # a checkpoint written before class ids
    assert DatasetMeta.from_dict(old).class_ids == []
    for ids in (["n1"], ["x"] * 1000, "n01440764", [1] * 1000):
        bad = {**meta.to_dict(), "class_ids": ids}
        with pytest.raises(DataError, match="class_ids must be a list of unique strings"):
            DatasetMeta.from_dict(bad)
    with pytest.raises(DataError, match="2 class ids for 1000 classes; give one unique id"):
        _imagenet_meta(class_ids=["a", "b"])


def _kaggle_val(root, write_images, wnids, tmp_path):
    """Kaggle's layout: root/LOC_val_solution.csv, root/ILSVRC/Data/CLS-LOC/val/*.JPEG."""
    val = root / "ILSVRC" / "Data" / "CLS-LOC" / "val"
    val.mkdir(parents=True)
    rows = ["ImageId,PredictionString"]
    for i, wnid in enumerate(wnids, start=1):
        write_images(tmp_path / "src", classes=["x"], per_class=1, size=(8, 8), seed=i)
        image_id = f"ILSVRC2012_val_{i:08d}"
        from PIL import Image

        Image.open(tmp_path / "src" / "x" / "00.png").convert("RGB").save(val / f"{image_id}.JPEG")
        rows.append(f"{image_id},{wnid} 10 20 200 220 {wnid} 1 2 30 40 ")
    (root / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    return val


def test_kaggles_flat_validation_folder_is_labelled_by_its_solution_file(tmp_path, write_images):
    val = _kaggle_val(tmp_path / "kaggle", write_images, [GOLDFISH, TENCH, GOLDFISH], tmp_path)
    data = load_dataset(str(val), "train", val_fraction=0.0)
    assert data.meta.class_names == [TENCH, GOLDFISH]
    assert [(path.name[-10:-5], label) for path, label in data.samples] == [
        ("00001", 1), ("00002", 0), ("00003", 1)]  # fmt: skip
    scored = as_trained(data, _imagenet_meta(), "val")
    assert [label for _, label in scored.samples] == [1, 0, 1]  # goldfish is class 1
    solution = tmp_path / "kaggle" / "LOC_val_solution.csv"
    rows = solution.read_text().splitlines()
    solution.write_text("\n".join([*rows[:3], rows[3].replace(GOLDFISH, TENCH)]))
    os.utime(solution, ns=(1, 1))  # a new file: another mtime, so not the cached index
    relabelled = load_dataset(str(val), "train", val_fraction=0.0)
    assert [label for _, label in relabelled.samples] == [1, 0, 0]

    (val / "ILSVRC2012_test_00000001.JPEG").write_bytes((val / f"{rows[1][:23]}.JPEG").read_bytes())
    with pytest.raises(DataError, match="1 image.s. without a row in .*ILSVRC2012_test_00000001"):
        load_dataset(str(val), "train", val_fraction=0.0)
    (val / "ILSVRC2012_test_00000001.JPEG").unlink()
    for content, message in [
        ("id,label\n", "its first line is not ImageId,PredictionString"),
        ("\n".join([rows[0], rows[1], "ILSVRC2012_val_00000002,tench 1 2 3 4"]),
         r"LOC_val_solution.csv:3: expected ImageId,PredictionString with a WordNet id first"),
    ]:  # fmt: skip
        solution.write_text(content)
        with pytest.raises(DataError, match=message):
            load_dataset(str(val), "train", val_fraction=0.0)
    solution.unlink()  # a flat folder with no solution file is what it was: not a dataset
    with pytest.raises(DataError, match="has no class sub-folders"):
        load_dataset(str(val), "train", val_fraction=0.0)


def _devkit(root, truth_ids, packed=False, leaves=1000):
    """ILSVRC 2012's devkit as it unpacks: ILSVRC2012_devkit_t12/data/meta.mat (MATLAB 7's
    compressed save of a synsets struct column: the 1,000 leaves numbered 1..1000 in the devkit's
    own order, not sorted, then the inner synsets) and the validation ground truth."""
    import io
    import random
    import tarfile

    import numpy as np
    import scipy.io

    wnids = list(imagenet_wnids())
    random.Random(0).shuffle(wnids)  # ILSVRC2012_ID 1 is not the sorted first
    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children",
              "wordnet_height", "num_train_images"]  # fmt: skip
    rows = [(i, w, f"words {i}", "gloss", 0, np.zeros((1, 0)), 0, 1300)
            for i, w in enumerate(wnids[:leaves], start=1)]  # fmt: skip
    rows.append((1001, "n00001740", "entity", "that which is", 2, np.array([[1, 2]]), 19, 0))
    synsets = np.zeros((len(rows), 1), dtype=[(name, "O") for name in fields])
    for index, row in enumerate(rows):
        for name, value in zip(fields, row):
            synsets[index, 0][name] = value
    meta = io.BytesIO()
    scipy.io.savemat(meta, {"synsets": synsets}, do_compression=True)
    files = {"data/meta.mat": meta.getvalue()}
    files["data/ILSVRC2012_validation_ground_truth.txt"] = "".join(
        f"{i}\n" for i in truth_ids
    ).encode()
    root.mkdir(parents=True, exist_ok=True)
    if packed:
        with tarfile.open(root / "ILSVRC2012_devkit_t12.tar.gz", "w:gz") as archive:
            for name, content in files.items():
                info = tarfile.TarInfo(f"ILSVRC2012_devkit_t12/{name}")
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    else:
        for name, content in files.items():
            (root / "ILSVRC2012_devkit_t12" / name).parent.mkdir(parents=True, exist_ok=True)
            (root / "ILSVRC2012_devkit_t12" / name).write_bytes(content)
    return wnids


@pytest.mark.parametrize("packed", [False, True])
def test_the_flat_validation_folder_is_labelled_by_ilsvrc_2012s_devkit(
    tmp_path, write_images, packed
):
    val = tmp_path / "imagenet" / "val"
    val.mkdir(parents=True)
    from PIL import Image

    for i in (1, 2, 3):
        write_images(tmp_path / "src", classes=["x"], per_class=1, size=(8, 8), seed=i)
        Image.open(tmp_path / "src" / "x" / "00.png").convert("RGB").save(
            val / f"ILSVRC2012_val_{i:08d}.JPEG"
        )
    devkit_order = _devkit(tmp_path / "imagenet", [7, 2, 7], packed=packed)
    data = load_dataset(str(val), "train", val_fraction=0.0)
    seventh, second = devkit_order[6], devkit_order[1]
    assert data.meta.class_names == sorted({seventh, second})
    named = [data.meta.class_names[label] for _, label in data.samples]
    assert named == [seventh, second, seventh]  # by ILSVRC2012_ID, through meta.mat
    scored = as_trained(data, _imagenet_meta(), "val")
    wnids = imagenet_wnids()
    assert [label for _, label in scored.samples] == [wnids.index(w) for w in named]


def test_a_devkit_that_is_not_ilsvrc_2012s_is_refused(tmp_path, write_images):
    from resnet.data.imagenet import devkit_labels

    _devkit(tmp_path / "a", [1], leaves=999)
    with pytest.raises(DataError, match="does not map ILSVRC2012_IDs 1..1000 to ImageNet-1k's"):
        devkit_labels(tmp_path / "a" / "ILSVRC2012_devkit_t12")
    _devkit(tmp_path / "b", [1, 1001])
    with pytest.raises(DataError, match=r"ground_truth.txt:2: expected an ILSVRC2012_ID from 1 to"):
        devkit_labels(tmp_path / "b" / "ILSVRC2012_devkit_t12")
    (tmp_path / "b" / "ILSVRC2012_devkit_t12" / "data" / "meta.mat").unlink()
    with pytest.raises(DataError, match="no data/meta.mat; unpack ILSVRC2012_devkit_t12.tar.gz"):
        devkit_labels(tmp_path / "b" / "ILSVRC2012_devkit_t12")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "ILSVRC2012_devkit_t12.tar.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="not a readable .tar.gz"):
        devkit_labels(tmp_path / "c" / "ILSVRC2012_devkit_t12.tar.gz")
