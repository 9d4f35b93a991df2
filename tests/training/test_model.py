"""The configurable model: small CNN by default, keras.applications backbones as options."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import UsageError
from training.model import build_model


def _probs(model, size: int, channels: int) -> np.ndarray:
    return np.asarray(model(np.random.default_rng(0).random((2, size, size, channels), dtype="float32")))


def test_small_cnn_outputs_probabilities():
    model = build_model("small_cnn", 32, 1, 3)
    probs = _probs(model, 32, 1)
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["mobilenet_v3_small", "efficientnet_b0"])
def test_backbones_build_without_downloading(architecture):
    model = build_model(architecture, 64, 1, 3)
    assert _probs(model, 64, 1).shape == (2, 3)


@pytest.mark.slow
def test_backbone_loads_a_local_weights_file(tmp_path):
    import keras

    donor = keras.applications.MobileNetV3Small(
        input_shape=(64, 64, 3), include_top=False, weights=None, include_preprocessing=False, pooling="avg"
    )
    path = tmp_path / "backbone.weights.h5"
    donor.save_weights(path)
    model = build_model("mobilenet_v3_small", 64, 3, 2, weights=str(path))
    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    for mine, theirs in zip(backbone.get_weights(), donor.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_bad_choices_are_usage_errors():
    with pytest.raises(UsageError, match="unknown architecture 'resnet'"):
        build_model("resnet", 32, 1, 3)
    with pytest.raises(UsageError, match="backbones only"):
        build_model("small_cnn", 32, 1, 3, weights="w.h5")
