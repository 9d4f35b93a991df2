"""The API under real gunicorn (via `mlops serve`) on loopback: clients, load, a killed worker."""

from __future__ import annotations

import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from api_testlib import CLASSES, MODEL_NAME, image_bytes

pytestmark = pytest.mark.slow


def test_predict_and_probes_over_http(server):
    assert server.get("/healthz").json()["status"] == "ok"
    assert server.get("/readyz").json()["model"]["version"] == 7
    files = {"file": ("x.png", image_bytes(seed=1), "image/png")}
    body = server.post("/predict", files=files).json()
    assert list(body["probabilities"]) == CLASSES
    raw = server.post("/predict", data=image_bytes(seed=1), headers={"Content-Type": "image/png"})
    assert raw.json()["probabilities"] == body["probabilities"]


def test_oversize_body_is_413_over_http(server):
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * (10 * 1024 * 1024 + 10)
    response = server.post("/predict", data=big, headers={"Content-Type": "image/png"})
    assert response.status_code == 413 and "bytes" in response.json()["error"]
    assert server.get("/readyz").status_code == 200


def test_tritonclient_infers_bytes_and_fp32(server, bundle):
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(MODEL_NAME)
        meta = client.get_model_metadata(MODEL_NAME)
        assert meta["outputs"][0]["shape"] == [-1, len(CLASSES)]

        images = [image_bytes(seed=s) for s in (1, 2, 3)]
        encoded = httpclient.InferInput("images", [3], "BYTES")
        encoded.set_data_from_numpy(np.array(images, dtype=np.object_), binary_data=True)
        for binary in (True, False):
            wanted = httpclient.InferRequestedOutput("probabilities", binary_data=binary)
            result = client.infer(MODEL_NAME, [encoded], outputs=[wanted])
            np.testing.assert_allclose(
                result.as_numpy("probabilities"), bundle.predict_encoded(images), atol=1e-5
            )

        pixels = np.random.default_rng(1).random((2, 64, 64, 1), dtype=np.float32)
        for binary in (True, False):
            tensor = httpclient.InferInput("pixels", list(pixels.shape), "FP32")
            tensor.set_data_from_numpy(pixels, binary_data=binary)
            result = client.infer(MODEL_NAME, [tensor])
            np.testing.assert_allclose(
                result.as_numpy("probabilities"), bundle.predict_pixels(pixels), atol=1e-5
            )

        wrong = httpclient.InferInput("pixels", [1, 32, 32, 1], "FP32")
        wrong.set_data_from_numpy(np.zeros((1, 32, 32, 1), np.float32))
        with pytest.raises(InferenceServerException, match=r"must be \[N, 64, 64, 1\]"):
            client.infer(MODEL_NAME, [wrong])
    finally:
        client.close()


def test_load_500_requests_8_threads_zero_failures(server):
    images = [image_bytes(size=(96, 96), seed=s) for s in range(8)]

    def one(i: int) -> int:
        with requests.Session() as session:
            response = session.post(
                server.url + "/predict", data=images[i % 8], headers={"Content-Type": "image/png"}, timeout=60
            )
        return response.status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(one, range(500)))
    assert codes.count(200) == 500, {c: codes.count(c) for c in set(codes)}

    # /metrics adds up both workers: every one of those 500 requests is counted once.
    text = server.get("/metrics").text
    match = re.search(
        r'mlops_api_requests_total\{endpoint="/predict",method="POST",status="200",version="7"\} (\S+)', text
    )
    assert match and float(match.group(1)) >= 500
    assert f'mlops_api_model_info{{name="{MODEL_NAME}",version="7"}} 1.0' in text


def test_killed_worker_is_replaced_and_service_keeps_answering(server):
    pids = {server.get("/healthz").json()["worker_pid"] for _ in range(20)}
    victim = sorted(pids)[0]
    os.kill(victim, signal.SIGKILL)
    failures, answered, seen = 0, 0, set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            response = requests.post(
                server.url + "/predict",
                data=image_bytes(seed=2),
                headers={"Content-Type": "image/png"},
                timeout=30,
            )
            answered += response.status_code == 200
            seen.add(requests.get(server.url + "/healthz", timeout=10).json()["worker_pid"])
        except requests.ConnectionError:
            failures += 1
        if answered >= 20 and seen - pids:
            break
        time.sleep(0.05)
    assert victim not in seen
    assert seen - pids, "gunicorn did not start a replacement worker"
    assert answered >= 20
    assert failures <= 2  # at most the requests in flight on the killed worker
