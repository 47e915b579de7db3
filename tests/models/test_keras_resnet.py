"""Keras's ResNet50/101/152 weight files (keras.applications) load into ours.

Keras itself (3.x, on its torch backend) builds the reference: its ResNet50 with random weights
and statistics, saved in Keras's .h5 weights format, run on its own "caffe" preprocessing of an
RGB image; the loaded model runs on that image ImageNet-normalised, as torchvision's weights do.
"""

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from resnet import create_model, load_weights
from resnet.errors import WeightsError
from resnet.models.caffe_names import CAFFE_MEAN_BGR, TORCHVISION_MEAN, TORCHVISION_STD
from resnet.models.pretrained import read_state_dict

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # keras's numpy 2 copy= notices
]
SIDE = 64


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")  # a dev dependency: installed with .[dev]
    if keras.backend.backend() != "torch":
        pytest.skip(f"keras runs on {keras.backend.backend()} here, the test needs torch")
    return keras


def _save(keras, model, path):
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as file:  # the format of keras.applications' downloads
        legacy_h5_format.save_weights_to_hdf5_group(file, model)


def _randomised(keras, model, seed=0):
    """Its BatchNorm statistics and biases random too (a fresh net has zeros and ones)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = weights
            shape = gamma.shape
            new = [rng.uniform(0.5, 1.5, shape), rng.normal(0, 0.1, shape)]
            new += [rng.normal(0, 0.2, shape), rng.uniform(0.5, 1.5, shape)]
            layer.set_weights([w.astype(np.float32) for w in new])
        elif weights and len(weights) == 2:
            layer.set_weights([weights[0], rng.normal(0, 0.1, weights[1].shape).astype(np.float32)])
    return model


@pytest.fixture(scope="module")
def keras_resnet50(keras, tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(
        weights=None, input_shape=(SIDE, SIDE, 3), classifier_activation=None
    )
    path = tmp_path_factory.mktemp("keras") / "resnet50_weights_tf_dim_ordering_tf_kernels.h5"
    _save(keras, _randomised(keras, model), path)
    return model, path


def test_keras_resnet50_gives_keras_logits_on_torchvisions_input(keras, keras_resnet50):
    from keras.applications.resnet import preprocess_input

    reference, path = keras_resnet50
    image = torch.rand(2, SIDE, SIDE, 3, generator=torch.Generator().manual_seed(0))
    expected = reference.predict(preprocess_input(image.numpy() * 255), verbose=0)
    ours = create_model("resnet50", stride_in_1x1=True)
    report = load_weights(ours, path)
    assert "folded into conv1" in report.describe() and report.describe().endswith("fc included")
    # Keras pads zeros in its input, i.e. Caffe's mean colour: give ours that border too (conv1
    # set to pad 0), so the comparison is exact there as well.
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (TORCHVISION_MEAN, TORCHVISION_STD))
    border = (torch.tensor(CAFFE_MEAN_BGR[::-1]).view(1, 3, 1, 1) / 255 - mean) / std
    normalised = (image.permute(0, 3, 1, 2) - mean) / std
    padded = F.pad(normalised - border, (3,) * 4) + border
    ours.conv1.padding = (0, 0)
    with torch.no_grad():
        logits = ours.eval()(padded)
    expected = torch.from_numpy(np.asarray(expected))
    difference = float((logits - expected).abs().max() / expected.abs().max())
    assert difference < 1e-5


def test_torchvisions_resnet50_refuses_a_keras_file(keras_resnet50):
    _, path = keras_resnet50
    with pytest.raises(WeightsError, match="stride_in_1x1=True and resnet50 has False"):
        load_weights(create_model("resnet50"), path)


def test_notop_file_and_whole_saved_model_load(keras, tmp_path):
    model = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(32, 32, 3))
    path = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    _save(keras, model, path)
    report = load_weights(create_model("resnet50", stride_in_1x1=True, num_classes=5), path)
    assert report.describe().endswith("it has no classifier: fc is new")
    model.save(tmp_path / "whole.h5")  # the weights under model_weights/, beside the config
    saved, written = read_state_dict(tmp_path / "whole.h5"), read_state_dict(path)
    assert saved.keys() == written.keys()
    assert all(torch.equal(saved[key], written[key]) for key in saved)


def test_a_fine_tuned_head_is_read_as_fc(keras, tmp_path):
    base = keras.applications.ResNet50(
        weights=None, include_top=False, pooling="avg", input_shape=(32, 32, 3)
    )
    head = keras.layers.Dense(5, name="flowers")
    _save(keras, keras.Model(base.input, head(base.output)), tmp_path / "tuned.h5")
    model = create_model("resnet50", stride_in_1x1=True, num_classes=5)
    assert load_weights(model, tmp_path / "tuned.h5").describe().endswith("fc included")
    kernel = torch.from_numpy(np.asarray(head.kernel.numpy()))
    assert torch.equal(model.fc.weight.detach(), kernel.T)
    hidden = keras.layers.Dense(16, name="hidden")(base.output)
    second = keras.layers.Dense(5, name="flowers")(hidden)
    _save(keras, keras.Model(base.input, second), tmp_path / "two.h5")
    with pytest.raises(WeightsError, match="outside keras.applications' ResNet .hidden, flowers"):
        read_state_dict(tmp_path / "two.h5")


def test_other_keras_files_are_refused(keras, tmp_path):
    import h5py

    v2 = keras.applications.ResNet50V2(weights=None, input_shape=(32, 32, 3))
    _save(keras, v2, tmp_path / "v2.h5")
    small = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, name="dense")])
    _save(keras, small, tmp_path / "dense.h5")
    with h5py.File(tmp_path / "plain.h5", "w") as file:
        file["x"] = np.zeros(3)
    (tmp_path / "text.h5").write_text("not hdf5")
    small.save_weights(tmp_path / "keras3.weights.h5")  # Keras 3's own weights format
    cases = {
        "v2.h5": "ResNet50V2/101V2/152V2",
        "dense.h5": "not keras.applications' ResNet50",
        "plain.h5": "without Keras's layer_names",
        "text.h5": "not a readable weight file",
        "keras3.weights.h5": "Keras 3's .weights.h5, which stores layers by class",
    }
    for name, message in cases.items():
        with pytest.raises(WeightsError, match=message):
            read_state_dict(tmp_path / name)
