"""Open Inference Protocol v2 through the Flask test client: metadata, infer, bad tensors."""

from __future__ import annotations

import base64
import json
import struct

import numpy as np
import pytest
from api_testlib import CLASSES, MODEL_NAME, image_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

INFER = f"/v2/models/{MODEL_NAME}/infer"


def test_health_and_metadata(client):
    assert client.get("/v2/health/live").json == {"live": True}
    assert client.get("/v2/health/ready").json == {"ready": True}
    meta = client.get(f"/v2/models/{MODEL_NAME}").json
    assert meta["name"] == MODEL_NAME and meta["versions"] == ["7"]
    assert {"name": "pixels", "datatype": "FP32", "shape": [-1, 64, 64, 1]} in meta["inputs"]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}]
    assert client.get(f"/v2/models/{MODEL_NAME}/ready").json["ready"] is True
    assert client.get(f"/v2/models/{MODEL_NAME}/versions/7/ready").status_code == 200
    assert client.get(f"/v2/models/{MODEL_NAME}/versions/8/ready").status_code == 404
    assert client.get("/v2/models/other").status_code == 404


def test_fp32_pixels_match_the_model(client, bundle):
    pixels = np.random.default_rng(0).random((2, 64, 64, 1), dtype=np.float32)
    body = {"id": "r1", "inputs": [{"name": "pixels", "shape": [2, 64, 64, 1], "datatype": "FP32",
                                    "data": pixels.reshape(-1).tolist()}]}  # fmt: skip
    response = client.post(INFER, json=body)
    assert response.status_code == 200, response.json
    out = response.json["outputs"][0]
    assert response.json["id"] == "r1" and out["shape"] == [2, 3] and out["datatype"] == "FP32"
    np.testing.assert_allclose(np.array(out["data"]).reshape(2, 3), bundle.predict_pixels(pixels), atol=1e-6)


def test_bytes_base64_json_matches_predict(client):
    data = image_bytes(seed=21)
    body = {"inputs": [{"name": "images", "shape": [1], "datatype": "BYTES",
                        "data": [base64.b64encode(data).decode()]}]}  # fmt: skip
    v2 = client.post(INFER, json=body).json["outputs"][0]["data"]
    predict = client.post("/predict", data=data, content_type="image/png").json["probabilities"]
    np.testing.assert_allclose(v2, [predict[c] for c in CLASSES], atol=1e-5)


def test_binary_extension_in_and_out(client, bundle):
    images = [image_bytes(seed=s) for s in (1, 2)]
    raw = b"".join(struct.pack("<I", len(d)) + d for d in images)
    head = json.dumps(
        {
            "inputs": [{"name": "images", "shape": [2], "datatype": "BYTES",
                        "parameters": {"binary_data_size": len(raw)}}],
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
        }
    ).encode()  # fmt: skip
    response = client.post(
        INFER, data=head + raw, headers={"Inference-Header-Content-Length": str(len(head))},
        content_type="application/octet-stream",
    )  # fmt: skip
    assert response.status_code == 200, response.get_data()
    length = int(response.headers["Inference-Header-Content-Length"])
    header = json.loads(response.data[:length])
    probs = np.frombuffer(response.data[length:], dtype="<f4").reshape(header["outputs"][0]["shape"])
    np.testing.assert_allclose(probs, bundle.predict_encoded(images), atol=1e-6)


def fp32(shape, data=None, datatype="FP32"):
    count = int(np.prod(shape)) if data is None else None
    return {"inputs": [{"name": "pixels", "shape": shape, "datatype": datatype,
                        "data": [0.5] * count if data is None else data}]}  # fmt: skip


@pytest.mark.parametrize(
    ("body", "status", "word"),
    [
        (fp32([1, 32, 32, 1]), 422, "[N, 64, 64, 1]"),
        (fp32([1, 64, 64, 3]), 422, "shape"),
        (fp32([64, 64, 1]), 422, "shape"),
        (fp32([0, 64, 64, 1]), 422, "batch"),
        (fp32([1, 64, 64, 1], data=[0.5] * 10), 422, "do not fill"),
        (fp32([1, 64, 64, 1], data=["a"] * 4096), 400, "numbers"),
        (fp32([1, 64, 64, 1], datatype="INT8"), 400, "INT8"),
        (fp32([-1, 64, 64, 1], data=[]), 422, "non-negative"),
        ({"inputs": []}, 400, "exactly one"),
        ({"nothing": 1}, 400, "exactly one"),
        ({"inputs": [{"name": "images", "shape": [2], "datatype": "BYTES", "data": ["!!"]}]}, 400, "base64"),
        (
            {
                "inputs": [
                    {
                        "name": "images",
                        "shape": [2],
                        "datatype": "BYTES",
                        "data": [base64.b64encode(b"x").decode()],
                    }
                ]
            },
            422,
            "2 images",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "images",
                        "shape": [1],
                        "datatype": "BYTES",
                        "data": [base64.b64encode(b"not an image").decode()],
                    }
                ]
            },
            400,
            "image 0",
        ),
        ({"inputs": [{"name": "images", "shape": [1, 64], "datatype": "BYTES", "data": []}]}, 422, "[N]"),
    ],
)
def test_bad_tensors_get_clear_errors(client, body, status, word):
    response = client.post(INFER, json=body)
    assert response.status_code == status, response.json
    assert word in response.json["error"]
    assert client.get("/v2/health/ready").status_code == 200


def test_invalid_json_and_bad_header_length(client):
    assert client.post(INFER, data=b"{nope", content_type="application/json").status_code == 400
    bad = client.post(INFER, data=b"{}", headers={"Inference-Header-Content-Length": "99"})
    assert bad.status_code == 400 and "does not fit" in bad.json["error"]
    assert client.post("/v2/models/other/infer", json=fp32([1, 64, 64, 1])).status_code == 404


@pytest.mark.parametrize("length", ["\u00b2", "-1", "+1", "1_0", " 2", "9" * 5000])
def test_header_length_is_ascii_decimal(client, length):
    """Look-alike digits (str.isdigit() is true for superscript two) are a 400, not a 500."""
    bad = client.post(INFER, data=b"{}", headers={"Inference-Header-Content-Length": length})
    assert bad.status_code == 400 and "does not fit" in bad.json["error"]


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
_tensor = st.fixed_dictionaries(
    {
        "name": st.text(max_size=6),
        "shape": st.lists(st.integers(-2, 70), max_size=5),
        "datatype": st.sampled_from(["FP32", "BYTES", "INT8", ""]),
        "data": _json,
    },
    optional={"parameters": st.dictionaries(st.just("binary_data_size"), st.integers(-5, 50))},
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(_json, st.fixed_dictionaries({"inputs": st.lists(_tensor, max_size=2)}, optional={
    "outputs": _json, "id": _json})))  # fmt: skip
def test_fuzz_infer_requests_never_500(client, body):
    response = client.post(INFER, data=json.dumps(body), content_type="application/json")
    assert response.status_code in (200, 400, 413, 415, 422), response.get_data(as_text=True)
    assert response.is_json
