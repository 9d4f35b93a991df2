"""The decode budget per request: pixels and decoded bytes over all images, from the headers, before decoding.

The bomb is issue 21's: a ~1 KiB JPEG 2000 DICOM of a flat 6000x6000 16-bit image, which costs
~1.5 s and ~650 MB to render. Sixteen in one request used to be decoded one after the other.
"""

from __future__ import annotations

import base64
import functools
import io
import time
from pathlib import Path

import pytest
from api_testlib import MODEL_NAME, image_bytes, start_server, stop_server
from dicom_files import WINDOWED, dicom_bytes, flat_bomb

from core.settings import ApiSettings

BOMB_PIXELS = 6000 * 6000


@functools.cache
def bomb() -> bytes:
    return flat_bomb(6000)


def budget_app(bundle, **limits: int):
    from model_api import create_app

    return create_app({"TESTING": True, "MODEL_BUNDLE": bundle, **limits}).test_client()


def still_serving(client) -> None:
    response = client.post("/predict", data=image_bytes(seed=3), content_type="image/png")
    assert response.status_code == 200, response.json


def test_the_bomb_is_what_the_issue_describes():
    data = bomb()
    assert len(data) < 2048  # about 1 KiB on the wire ...
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(data))
    assert (ds.Rows, ds.Columns, ds.BitsAllocated) == (6000, 6000, 16)  # ... 72 MB decoded


def test_sixteen_bombs_in_one_multipart_request_are_413_before_any_decoding(client):
    files = {"file": [(io.BytesIO(bomb()), f"bomb{i}.dcm") for i in range(16)]}
    started = time.perf_counter()
    response = client.post("/predict", data=files)
    elapsed = time.perf_counter() - started
    assert response.status_code == 413, response.json
    budget = ApiSettings().max_request_pixels
    # The default budget takes two of them (72e6 pixels), the third breaks it and is named.
    assert 2 * BOMB_PIXELS <= budget < 3 * BOMB_PIXELS
    error = response.json["error"]
    assert error.startswith("file 3 (bomb2.dcm) (DICOM 6000x6000)"), error
    assert f"{3 * BOMB_PIXELS} decoded pixels" in error and f"{budget} pixels" in error
    assert "nothing was decoded" in error
    assert elapsed < 1.0, f"{elapsed:.2f} s: the images were decoded"  # one render alone takes ~1.5 s
    still_serving(client)


def test_sixteen_bombs_as_v2_bytes_are_413(client):
    data = [base64.b64encode(bomb()).decode()] * 16
    body = {"inputs": [{"name": "images", "shape": [16], "datatype": "BYTES", "data": data}]}
    started = time.perf_counter()
    response = client.post(f"/v2/models/{MODEL_NAME}/infer", json=body)
    assert response.status_code == 413 and response.json["error"].startswith("image 2 (DICOM 6000x6000)")
    assert time.perf_counter() - started < 1.0
    still_serving(client)


def test_one_bomb_as_the_raw_body_over_a_smaller_budget_is_413(bundle):
    client = budget_app(bundle, MAX_REQUEST_PIXELS=BOMB_PIXELS - 1)
    started = time.perf_counter()
    response = client.post("/predict", data=bomb(), content_type="application/dicom")
    assert response.status_code == 413, response.json
    assert response.json["error"].startswith("the request body (DICOM 6000x6000) brings this request to")
    assert time.perf_counter() - started < 1.0
    still_serving(client)


def test_the_budget_sums_png_and_dicom_and_its_edge_is_inclusive(bundle):
    png = image_bytes(size=(100, 50))  # 5,000 pixels, 8-bit gray: 5,000 bytes
    dicom = dicom_bytes(WINDOWED)  # 64x64 = 4,096 pixels, 16 bits allocated: 8,192 bytes
    files = {"file": [(io.BytesIO(png), "a.png"), (io.BytesIO(dicom), "b.dcm")]}

    exact = budget_app(bundle, MAX_REQUEST_PIXELS=9096, MAX_REQUEST_DECODED_BYTES=13192)
    assert exact.post("/predict", data=files).status_code == 200

    files = {"file": [(io.BytesIO(png), "a.png"), (io.BytesIO(dicom), "b.dcm")]}
    short_of_pixels = budget_app(bundle, MAX_REQUEST_PIXELS=9095)
    response = short_of_pixels.post("/predict", data=files)
    assert response.status_code == 413 and response.json["error"].startswith("file 2 (b.dcm) (DICOM 64x64)")

    # 16-bit samples count twice in bytes: the pixels fit, the decoded bytes do not.
    files = {"file": [(io.BytesIO(png), "a.png"), (io.BytesIO(dicom), "b.dcm")]}
    short_of_bytes = budget_app(bundle, MAX_REQUEST_DECODED_BYTES=13191)
    response = short_of_bytes.post("/predict", data=files)
    assert response.status_code == 413 and "13192 decoded bytes" in response.json["error"]
    still_serving(short_of_bytes)


def test_the_budget_comes_from_the_settings(monkeypatch):
    monkeypatch.setenv("MLOPS_API_MAX_REQUEST_PIXELS", "1234")
    monkeypatch.setenv("MLOPS_API_MAX_REQUEST_DECODED_BYTES", "5678")
    from model_api.app import _defaults

    config = _defaults()
    assert (config["MAX_REQUEST_PIXELS"], config["MAX_REQUEST_DECODED_BYTES"]) == (1234, 5678)


def vm_hwm_mb(pid: int) -> float:
    """The process's peak resident set size (VmHWM) in MB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


@pytest.mark.slow
def test_a_gunicorn_worker_stays_small_under_sixteen_bombs(model_dir, tmp_path):
    """Real gunicorn, one worker: its peak RSS barely moves (it rose ~650 MB when bombs were decoded)."""
    server = start_server(model_dir, tmp_path, workers=1, threads=2)
    try:
        pid = server.get("/healthz").json()["worker_pid"]
        before = vm_hwm_mb(pid)
        files = [("file", (f"bomb{i}.dcm", bomb(), "application/dicom")) for i in range(16)]
        started = time.perf_counter()
        response = server.post("/predict", files=files)
        elapsed = time.perf_counter() - started
        after = vm_hwm_mb(pid)
        print(f"\n16 bombs: HTTP {response.status_code} in {elapsed:.2f} s; ", end="")
        print(f"worker VmHWM {before:.0f} → {after:.0f} MB")
        assert response.status_code == 413, response.text
        assert after - before < 100, f"the worker's peak RSS rose by {after - before:.0f} MB"
        assert elapsed < 2.0
        assert server.get("/healthz").json()["worker_pid"] == pid  # the same worker, alive
    finally:
        stop_server(server)
