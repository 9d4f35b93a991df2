"""Grad-CAM behind /predict?explain=1: where the model looked, and the plain path untouched."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
from api_testlib import CLASSES, image_bytes
from PIL import Image

from core.preprocessing import preprocess_image


def decode_png(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


def test_explain_adds_a_heatmap_and_keeps_the_answer(client, bundle):
    data = image_bytes(size=(90, 70), seed=5)
    plain = client.post("/predict", data=data, content_type="image/png").json
    response = client.post("/predict?explain=1", data=data, content_type="image/png")
    assert response.status_code == 200, response.json
    body = response.json
    assert body["label"] == plain["label"]
    for c in CLASSES:
        assert body["probabilities"][c] == pytest.approx(plain["probabilities"][c], abs=1e-6)
    explanation = body["explanation"]
    assert explanation["method"] == "grad-cam" and explanation["class"] == body["label"]
    assert explanation["layer"] == bundle._model.layers[0].name  # the fixture's only Conv2D
    assert explanation["size"] == [64, 64]
    heat = decode_png(explanation["heatmap_png"])
    assert heat.shape == (64, 64) and heat.dtype == np.uint8 and heat.max() > 0
    seen = decode_png(explanation["input_png"])  # what the model saw: the preprocessed upload
    expected = np.rint(preprocess_image(data, bundle.spec).numpy()[..., 0] * 255)
    assert np.abs(seen - expected).max() <= 1  # 8-bit rounding of the float input


@pytest.mark.parametrize("value", ["0", "false", "no", ""])
def test_explain_off_is_the_plain_answer(client, value):
    response = client.post(f"/predict?explain={value}", data=image_bytes(seed=6), content_type="image/png")
    assert response.status_code == 200 and "explanation" not in response.json


def test_explain_takes_yes_or_no_only(client):
    response = client.post("/predict?explain=maybe", data=image_bytes(seed=6), content_type="image/png")
    assert response.status_code == 400 and "explain='maybe'" in response.json["error"]


def test_each_file_gets_its_own_explanation(client):
    files = [(io.BytesIO(image_bytes(seed=s)), f"{s}.png") for s in (1, 2)]
    response = client.post("/predict?explain=1", data={"file": files})
    assert response.status_code == 200, response.json
    assert [item["explanation"]["class"] for item in response.json] == [
        item["label"] for item in response.json
    ]
    assert response.json[0]["explanation"]["heatmap_png"] != response.json[1]["explanation"]["heatmap_png"]


def test_explain_names_a_bad_image(client):
    response = client.post("/predict?explain=1", data=b"not an image", content_type="image/png")
    assert response.status_code == 400 and "not an image" in response.json["error"]


def _bright_spot_model(folder: Path, gain: float) -> Path:
    """A model whose class 0 is 'there is something bright': channel 0 is the pixel, channel 1 its dark."""
    import keras

    model = keras.Sequential(
        [
            keras.Input((64, 64, 1)),
            keras.layers.Conv2D(2, 1, activation="relu", name="detector"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.layers[0].set_weights([np.array([[[[1.0, -1.0]]]]), np.array([0.0, 1.0])])
    model.layers[2].set_weights([np.array([[gain, 0, 0], [0, 1.0, 0]]), np.zeros(3)])
    model.save(folder / "model.keras")
    manifest = {"classes": CLASSES, "preprocessing": {"image_size": 64, "channels": 1}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder / "model.keras"


def _spot(top: int, left: int) -> bytes:
    pixels = np.zeros((128, 128), np.uint8)
    pixels[top : top + 32, left : left + 32] = 255
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize("gain", [30.0, 1000.0])  # 1000: the probability saturates at 1.0
def test_heatmap_lights_up_where_the_evidence_is(tmp_path, gain):
    """A bright square moved around the image moves the heatmap's peak with it, even when p = 1."""
    from model_api.bundle import load_bundle

    path = _bright_spot_model(tmp_path, gain)
    served = load_bundle(path, json.loads((tmp_path / "manifest.json").read_text()))
    assert served.explainer.layer == "detector"
    for top, left in ((0, 0), (96, 96), (0, 96)):
        probabilities, heatmaps, _ = served.explain_encoded([_spot(top, left)])
        assert probabilities.argmax() == 0
        heat = np.asarray(Image.open(io.BytesIO(heatmaps[0])), np.float64)
        # the square covers [top/2, top/2 + 16) x [left/2, left/2 + 16) at the 64x64 input
        inside = heat[top // 2 + 2 : top // 2 + 14, left // 2 + 2 : left // 2 + 14]
        outside = heat.copy()
        outside[max(top // 2 - 2, 0) : top // 2 + 18, max(left // 2 - 2, 0) : left // 2 + 18] = np.nan
        assert inside.min() > 200, (top, left)
        assert np.nanmax(outside) < 20, (top, left)


def test_a_model_with_no_convolution_serves_but_cannot_explain(tmp_path):
    import keras

    from model_api import create_app
    from model_api.bundle import load_bundle

    model = keras.Sequential(
        [keras.Input((64, 64, 1)), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")]
    )
    model.save(tmp_path / "model.keras")
    manifest = {"classes": CLASSES, "preprocessing": {"image_size": 64, "channels": 1}}
    served = load_bundle(tmp_path / "model.keras", manifest)
    app = create_app({"TESTING": True, "MODEL_BUNDLE": served}).test_client()
    assert app.post("/predict", data=image_bytes(seed=1), content_type="image/png").status_code == 200
    response = app.post("/predict?explain=1", data=image_bytes(seed=1), content_type="image/png")
    assert response.status_code == 422 and "no convolutional" in response.json["error"]


def test_a_model_with_a_merge_at_the_top_serves_but_cannot_explain(tmp_path):
    """A bare functional model whose top level multiplies two branches (EfficientNet's squeeze-excite,
    keras.applications.EfficientNetB0 as is) used to fail to load: the explainer's replay crashed."""
    import keras

    from model_api import create_app
    from model_api.bundle import load_bundle

    inputs = keras.Input((64, 64, 1))
    features = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    gate = keras.layers.Conv2D(4, 1, activation="sigmoid")(
        keras.layers.GlobalAveragePooling2D(keepdims=True)(features)
    )
    merged = keras.layers.Multiply()([features, gate])
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(merged))
    keras.Model(inputs, outputs).save(tmp_path / "model.keras")
    manifest = {"classes": CLASSES, "preprocessing": {"image_size": 64, "channels": 1}}
    served = load_bundle(tmp_path / "model.keras", manifest)
    app = create_app({"TESTING": True, "MODEL_BUNDLE": served}).test_client()
    assert app.post("/predict", data=image_bytes(seed=1), content_type="image/png").status_code == 200
    response = app.post("/predict?explain=1", data=image_bytes(seed=1), content_type="image/png")
    assert response.status_code == 422 and "not a chain of layers" in response.json["error"]


def test_plain_predictions_never_run_the_explainer(bundle):
    from model_api import create_app

    class Tripwire:
        layer = "tripwire"

        def __call__(self, images):
            raise AssertionError("the plain path ran the explainer")

    app = create_app({"TESTING": True, "MODEL_BUNDLE": dataclasses.replace(bundle, explainer=Tripwire())})
    client = app.test_client()
    assert client.post("/predict", data=image_bytes(seed=2), content_type="image/png").status_code == 200
    # the tripwire is live: the explain path trips it (the app turns that into its JSON 500)
    tripped = client.post("/predict?explain=1", data=image_bytes(seed=2), content_type="image/png")
    assert tripped.status_code == 500 and "AssertionError" in tripped.json["error"]
