"""The version loads through the serving path and its outputs match its class list."""

from __future__ import annotations

import numpy as np


def test_manifest_describes_a_servable_model(manifest, classes):
    assert classes, "manifest has an empty class list"
    assert len(set(classes)) == len(classes), f"duplicate class names: {classes}"
    assert manifest.preprocessing is not None, "manifest has no preprocessing"
    assert manifest.preprocessing.channels in (1, 3), manifest.preprocessing


def test_model_input_matches_preprocessing(served, classes):
    """The model takes exactly what the shared preprocessing produces."""
    size, channels = served.spec.image_size, served.spec.channels
    assert served.input_shape == (size, size, channels)
    probs = served.predict_pixels(np.zeros((1, size, size, channels), np.float32))
    assert probs.shape == (1, len(classes))


def test_output_has_one_probability_per_class(served, sample, classes):
    probs = served.predict_encoded([img.data for img in sample[:4]])
    assert probs.shape == (min(4, len(sample)), len(classes))


def test_probabilities_are_a_distribution(served, sample):
    probs = served.predict_encoded([img.data for img in sample])
    assert np.all(np.isfinite(probs)), "non-finite probabilities"
    assert np.all((probs >= 0.0) & (probs <= 1.0)), "probabilities outside [0, 1]"
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4, err_msg="rows do not sum to 1")
