"""/predict and the API's own endpoints through the Flask test client."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from api_testlib import CLASSES, MODEL_NAME, image_bytes

from core.preprocessing import preprocess_image


def expected_probabilities(bundle, data: bytes) -> np.ndarray:
    """What the model says for DATA through the shared preprocessing, outside the API."""
    import keras

    model = keras.saving.load_model(bundle.model_path, compile=False)
    pixels = preprocess_image(data, bundle.spec)
    return np.asarray(model(pixels[None], training=False))[0]


def test_multipart_upload_returns_label_probabilities_model_and_latency(client, bundle):
    data = image_bytes(seed=1)
    response = client.post("/predict", data={"file": (io.BytesIO(data), "xray.png")})
    assert response.status_code == 200, response.json
    body = response.json
    assert list(body) == ["label", "decision", "probabilities", "model", "latency_ms", "request_id"]
    assert body["decision"] == body["label"]  # a version without a deferral threshold never defers
    assert response.headers["X-Request-Id"] == body["request_id"]
    assert list(body["probabilities"]) == CLASSES
    assert body["model"] == {"name": MODEL_NAME, "version": 7}
    assert body["latency_ms"] > 0
    probs = np.array(list(body["probabilities"].values()))
    np.testing.assert_allclose(probs, expected_probabilities(bundle, data), atol=1e-5)
    assert body["label"] == CLASSES[int(np.argmax(probs))]


@pytest.mark.parametrize("content_type", ["image/png", "application/octet-stream", None])
def test_raw_body_gives_the_same_answer_as_multipart(client, content_type):
    data = image_bytes(seed=2)
    raw = client.post("/predict", data=data, content_type=content_type)
    multipart = client.post("/predict", data={"file": (io.BytesIO(data), "x.png")})
    assert raw.status_code == 200, raw.json
    assert raw.json["probabilities"] == multipart.json["probabilities"]


@pytest.mark.parametrize(("mode", "fmt"), [("RGB", "JPEG"), ("RGBA", "PNG"), ("L", "JPEG"), ("RGB", "PNG")])
def test_other_formats_and_channel_counts_are_accepted(client, mode, fmt):
    response = client.post("/predict", data=image_bytes(mode=mode, fmt=fmt), content_type="image/x")
    assert response.status_code == 200, response.json
    assert sum(response.json["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


def test_several_files_give_a_list_in_upload_order(client, bundle):
    images = [image_bytes(seed=s) for s in (3, 4, 5)]
    files = [(io.BytesIO(d), f"{i}.png") for i, d in enumerate(images)]
    response = client.post("/predict", data={"file": files})
    assert response.status_code == 200, response.json
    assert isinstance(response.json, list) and len(response.json) == 3
    for item, data in zip(response.json, images, strict=True):
        single = client.post("/predict", data=data, content_type="image/png").json
        np.testing.assert_allclose(
            list(item["probabilities"].values()), list(single["probabilities"].values()), atol=1e-5
        )


def test_health_ready_and_model_summary(client):
    assert client.get("/healthz").json["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["model"] == {"name": MODEL_NAME, "version": 7}
    summary = client.get("/model").json
    assert summary["classes"] == CLASSES
    assert summary["preprocessing"] == {"image_size": 64, "channels": 1}
    assert summary["metrics"]["accuracy"] == 0.9
    assert summary["version"] == 7


def test_metrics_count_requests_predictions_and_model(client):
    client.post("/predict", data=image_bytes(seed=9), content_type="image/png")
    client.post("/predict", data=b"nope", content_type="image/png")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'mlops_api_requests_total{endpoint="/predict",method="POST",status="200",version="7"}' in text
    assert 'mlops_api_requests_total{endpoint="/predict",method="POST",status="400",version="7"}' in text
    assert "mlops_api_request_latency_seconds_bucket" in text
    assert "mlops_api_predictions_total{label=" in text and 'version="7"}' in text
    assert f'mlops_api_model_info{{name="{MODEL_NAME}",version="7"}} 1.0' in text


def test_index_page_names_the_model_and_uses_no_cdn(client):
    page = client.get("/").get_data(as_text=True)
    assert MODEL_NAME in page and 'type="file"' in page
    assert "http://" not in page and "https://" not in page  # no external scripts or styles


def test_app_from_a_model_ref_loads_the_model(model_dir):
    """No preloaded bundle: create_app fetches MODEL_REF (a local file) and warms it."""
    from model_api import create_app

    app = create_app({"MODEL_REF": str(model_dir / "model.keras")})
    assert app.test_client().get("/model").json["name"] == MODEL_NAME
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert app.extensions["mlops_bundle"].classes == manifest["classes"]
