"""Served probabilities are the calibrated ones: softmax(log p / T), T from the manifest."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from api_testlib import image_bytes

from core.preprocessing import preprocess_image

TEMPERATURE = 0.25  # sharpening: far from the model's own probabilities, so a missed step shows


@pytest.fixture(scope="module")
def calibrated_client(model_dir):
    from model_api import create_app
    from model_api.bundle import load_bundle

    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["calibration"] = {"temperature": TEMPERATURE, "ece_before": 0.2, "ece_after": 0.05}
    bundle = load_bundle(model_dir / "model.keras", manifest)
    return bundle, create_app({"TESTING": True, "MODEL_BUNDLE": bundle}).test_client()


def _by_hand(model_path, spec, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The model's own probabilities and softmax(log p / T), computed here with numpy."""
    import keras

    model = keras.saving.load_model(model_path, compile=False)
    raw = np.asarray(model(preprocess_image(data, spec)[None], training=False), dtype=np.float64)[0]
    z = np.log(raw) / TEMPERATURE
    return raw, np.exp(z - z.max()) / np.exp(z - z.max()).sum()


def test_served_probabilities_equal_softmax_of_log_probabilities_over_t(calibrated_client):
    bundle, client = calibrated_client
    for seed in (1, 2, 3):
        data = image_bytes(seed=seed)
        response = client.post("/predict", data={"file": (io.BytesIO(data), "x.png")})
        assert response.status_code == 200, response.json
        served = np.array(list(response.json["probabilities"].values()))
        raw, expected = _by_hand(bundle.model_path, bundle.spec, data)
        np.testing.assert_allclose(served, expected, atol=1e-5)
        assert np.abs(served - raw).max() > 1e-3  # calibration changed them
        assert served.sum() == pytest.approx(1.0, abs=1e-5)
        assert int(served.argmax()) == int(raw.argmax())


def test_a_manifest_without_calibration_serves_the_model_as_it_is(client, bundle):
    data = image_bytes(seed=4)
    response = client.post("/predict", data={"file": (io.BytesIO(data), "x.png")})
    served = np.array(list(response.json["probabilities"].values()))
    np.testing.assert_allclose(served, _by_hand(bundle.model_path, bundle.spec, data)[0], atol=1e-5)


@pytest.mark.parametrize("temperature", [0, -1.5])
def test_a_non_positive_temperature_is_refused(model_dir, temperature):
    from core.errors import MlopsError
    from model_api.bundle import load_bundle

    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["calibration"] = {"temperature": temperature}
    with pytest.raises(MlopsError, match="temperature must be > 0"):
        load_bundle(model_dir / "model.keras", manifest, warmup=False)
