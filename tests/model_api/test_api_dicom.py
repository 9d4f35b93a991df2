"""DICOM through the API: /predict (raw and multipart) and v2 BYTES, same answer as its PNG rendering."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from api_testlib import CLASSES, MODEL_NAME
from dicom_files import (
    COLOR,
    JPEG_12_BIT,
    JPEG_LOSSLESS,
    MULTI_FRAME,
    NO_PIXELS,
    UNWINDOWED,
    WINDOWED,
    dicom_bytes,
    dicom_path,
    monochrome1_copy,
    png_of,
    reference_rendering,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def bytes_request(*images: bytes) -> dict:
    """A v2 infer request with one BYTES input holding IMAGES as base64 JSON data."""
    data = [base64.b64encode(image).decode() for image in images]
    return {"inputs": [{"name": "images", "shape": [len(images)], "datatype": "BYTES", "data": data}]}


def probabilities(response) -> np.ndarray:
    assert response.status_code == 200, response.get_json()
    return np.array([response.json["probabilities"][c] for c in CLASSES])


@pytest.mark.parametrize("name", [WINDOWED, UNWINDOWED])
def test_dicom_body_scores_like_its_png_rendering(client, name):
    """The reference rendering (the standard, in numpy) as a PNG gets the very same answer."""
    dicom = client.post("/predict", data=dicom_bytes(name), content_type="application/dicom")
    png = client.post(
        "/predict", data=png_of(reference_rendering(dicom_path(name))), content_type="image/png"
    )
    np.testing.assert_array_equal(probabilities(dicom), probabilities(png))


def test_dicom_as_a_multipart_dcm_file_and_as_octet_stream(client):
    expected = probabilities(
        client.post("/predict", data=dicom_bytes(WINDOWED), content_type="application/dicom")
    )
    upload = client.post("/predict", data={"file": (io.BytesIO(dicom_bytes(WINDOWED)), "chest.dcm")})
    raw = client.post("/predict", data=dicom_bytes(WINDOWED), content_type="application/octet-stream")
    np.testing.assert_array_equal(probabilities(upload), expected)
    np.testing.assert_array_equal(probabilities(raw), expected)


def test_monochrome1_dicom_scores_like_its_inverted_png(client, tmp_path):
    path = monochrome1_copy(WINDOWED, tmp_path / "m1.dcm")
    dicom = client.post("/predict", data=path.read_bytes(), content_type="application/dicom")
    png = client.post("/predict", data=png_of(reference_rendering(path)), content_type="image/png")
    np.testing.assert_array_equal(probabilities(dicom), probabilities(png))
    upright = client.post("/predict", data=dicom_bytes(WINDOWED), content_type="application/dicom")
    assert not np.array_equal(probabilities(dicom), probabilities(upright))  # the inversion reached the model


def test_v2_bytes_take_dicom_beside_png(client):
    png = png_of(reference_rendering(dicom_path(WINDOWED)))
    body = bytes_request(dicom_bytes(WINDOWED), png)
    response = client.post(f"/v2/models/{MODEL_NAME}/infer", json=body)
    assert response.status_code == 200, response.json
    rows = np.array(response.json["outputs"][0]["data"]).reshape(2, len(CLASSES))
    np.testing.assert_allclose(rows[0], rows[1], atol=1e-6)


def test_colour_dicom_is_accepted(client):
    response = client.post("/predict", data=dicom_bytes(COLOR), content_type="application/dicom")
    assert sum(probabilities(response)) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(
    ("name", "status", "words"),
    [
        (JPEG_LOSSLESS, 415, ["JPEG Lossless", "1.2.840.10008.1.2.4.70"]),
        (JPEG_12_BIT, 415, ["JPEG Extended", "1.2.840.10008.1.2.4.51"]),
        (NO_PIXELS, 400, ["no Pixel Data"]),
        (MULTI_FRAME, 400, ["15 frames"]),
    ],
)
def test_dicom_we_cannot_use_gets_a_clear_4xx(client, name, status, words):
    response = client.post("/predict", data=dicom_bytes(name), content_type="application/dicom")
    assert response.status_code == status, response.get_json()
    assert response.json["error"].startswith("the request body ")
    for word in words:
        assert word in response.json["error"]
    assert (
        client.post("/predict", data=dicom_bytes(WINDOWED), content_type="application/dicom").status_code
        == 200
    )


def test_undecodable_dicom_in_a_v2_batch_is_named(client):
    body = bytes_request(dicom_bytes(WINDOWED), dicom_bytes(JPEG_LOSSLESS))
    response = client.post(f"/v2/models/{MODEL_NAME}/infer", json=body)
    assert (
        response.status_code == 415 and "image 1 uses transfer syntax JPEG Lossless" in response.json["error"]
    )


def test_dicom_pixel_limit_is_413(bundle):
    from model_api import create_app

    small = create_app({"TESTING": True, "MODEL_BUNDLE": bundle, "MAX_IMAGE_PIXELS": 4000}).test_client()
    response = small.post("/predict", data=dicom_bytes(WINDOWED), content_type="application/dicom")
    assert response.status_code == 413 and "4096 pixels; the limit is 4000" in response.json["error"]


def test_dicom_content_type_with_other_bytes_is_400(client):
    response = client.post("/predict", data=b"plain text, not a scan", content_type="application/dicom")
    assert response.status_code == 400 and "DICOM" in response.json["error"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from([WINDOWED, COLOR, "MR_small_RLE.dcm"]),
    edits=st.lists(
        st.tuples(st.integers(0, 1400), st.binary(min_size=1, max_size=4)), min_size=1, max_size=6
    ),
    cut=st.one_of(st.none(), st.integers(132, 3300)),
)
def test_damaged_dicom_gets_a_4xx_never_a_500(client, name, edits, cut):
    """Bytes overwritten in the header (tags, lengths, VRs) or a file cut short: an answer, never a crash."""
    data = bytearray(dicom_bytes(name))
    for at, chunk in edits:
        data[at : at + len(chunk)] = chunk
    body = bytes(data[:cut] if cut else data)
    response = client.post("/predict", data=body, content_type="application/dicom")
    assert response.status_code in (200, 400, 413, 415), response.get_json()
    assert response.is_json
