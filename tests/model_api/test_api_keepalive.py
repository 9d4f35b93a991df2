"""Keep-alive after an early error, under real gunicorn: the client's next request on the connection works.

Issue 21: `POST /v2/models/nope/infer` with a 166 KB body answered 404 with `Connection: keep-alive`,
then gunicorn (which drains at most 64 KiB of an unread body) closed the connection, and the client's
next request on it failed ("connection closed").
"""

from __future__ import annotations

import http.client
import io
import json
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from api_testlib import MODEL_NAME, Server, image_bytes
from live_server import start_serve, stop_server

pytestmark = pytest.mark.slow

LIMIT = 1_000_000  # the server's max_body_bytes
BIG = 166 * 1024  # the body: more than gunicorn drains by itself
TOKEN = "keepalive-feedback-token-0123456789"
INFER = f"/v2/models/{MODEL_NAME}/infer"


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One gunicorn worker (every request meets the same process), a 1 MB body limit, feedback on."""
    env = {"MLOPS_API_MAX_BODY_BYTES": str(LIMIT), "MLOPS_FEEDBACK_TOKEN": TOKEN}
    running = start_serve(
        str(model_dir / "model.keras"), tmp_path_factory.mktemp("keepalive"), workers=1, threads=2, env=env
    )
    try:
        yield running
    finally:
        stop_server(running)


def good_infer_body() -> tuple[bytes, dict[str, str]]:
    """A v2 BYTES request for one PNG, binary extension, as tritonclient sends it."""
    image = image_bytes(seed=5)
    raw = struct.pack("<I", len(image)) + image
    head = json.dumps(
        {"inputs": [{"name": "images", "shape": [1], "datatype": "BYTES",
                     "parameters": {"binary_data_size": len(raw)}}]}
    ).encode()  # fmt: skip
    headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))}
    return head + raw, headers


def multipart(fields: dict[str, bytes]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, data in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="x"\r\n'.encode())
        out.write(b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def bad_requests() -> dict[str, tuple[str, str, bytes, dict[str, str], int]]:
    """name → (method, path, body, headers, expected status): every early 4xx, each with a big body."""
    filler = b"\0" * BIG
    no_file, no_file_type = multipart({"other": filler})
    bad_shape = json.dumps(
        {"inputs": [{"name": "pixels", "shape": [1, 32, 32, 1], "datatype": "FP32", "data": [0.0] * 1024}],
         "pad": "x" * BIG}
    ).encode()  # fmt: skip
    feedback = {"Content-Type": "application/json"}
    return {
        "404 unknown model": (
            "POST",
            "/v2/models/nope/infer",
            filler,
            {"Content-Type": "application/json"},
            404,
        ),
        "404 unknown version": ("POST", f"/v2/models/{MODEL_NAME}/versions/99/infer", filler, {}, 404),
        "404 unknown path": ("POST", "/nowhere", filler, {}, 404),
        "405 wrong method": ("PUT", "/predict", filler, {}, 405),
        "415 wrong type": ("POST", "/predict", filler, {"Content-Type": "text/plain"}, 415),
        "400 no file field": ("POST", "/predict", no_file, {"Content-Type": no_file_type}, 400),
        "400 not an image": ("POST", "/predict", filler, {"Content-Type": "image/png"}, 400),
        "422 bad shape": ("POST", INFER, bad_shape, {"Content-Type": "application/json"}, 422),
        "401 no token": ("POST", "/feedback", filler, feedback, 401),
        "413 over the limit": ("POST", "/predict", b"\0" * (LIMIT + 1), {"Content-Type": "image/png"}, 413),
    }


@pytest.mark.parametrize("name", list(bad_requests()))
def test_the_next_request_on_the_connection_after_a_4xx_gets_its_answer(server, name):
    method, path, body, headers, status = bad_requests()[name]
    connection = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        assert response.status == status, answer[:300]
        assert "error" in json.loads(answer)
        promised = response.getheader("Connection", "").lower()
        assert promised in ("keep-alive", "close")
        reused = promised == "keep-alive"
        # http.client reuses the socket after keep-alive and opens a new one after close.
        good, good_headers = good_infer_body()
        connection.request("POST", INFER, body=good, headers=good_headers)
        second = connection.getresponse()
        assert second.status == 200, second.read()[:300]
        assert json.loads(second.read())["outputs"][0]["shape"] == [1, 3]
        if name.startswith("413"):
            assert not reused  # a body over the limit is never read: the answer says so
        else:
            assert reused  # everything else is drained, so the connection stays usable
    finally:
        connection.close()


def test_tritonclient_after_a_wrong_shape_and_an_unknown_model(server, bundle):
    """The issue's client: one InferenceServerClient (one pooled connection) through two errors."""
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    client = httpclient.InferenceServerClient(server.url.removeprefix("http://"), concurrency=1)
    images = [image_bytes(seed=s) for s in (1, 2)]
    good = httpclient.InferInput("images", [2], "BYTES")
    good.set_data_from_numpy(np.array(images, dtype=np.object_), binary_data=True)
    try:
        wrong = httpclient.InferInput("pixels", [1, 128, 128, 1], "FP32")  # 64 KiB of pixels
        wrong.set_data_from_numpy(np.zeros((1, 128, 128, 1), np.float32), binary_data=True)
        with pytest.raises(InferenceServerException, match=r"must be \[N, 64, 64, 1\]"):
            client.infer(MODEL_NAME, [wrong])
        result = client.infer(MODEL_NAME, [good])
        np.testing.assert_allclose(
            result.as_numpy("probabilities"), bundle.predict_encoded(images), atol=1e-5
        )

        big = httpclient.InferInput("pixels", [1, 208, 208, 1], "FP32")  # 169 KB, as in the issue
        big.set_data_from_numpy(np.zeros((1, 208, 208, 1), np.float32), binary_data=True)
        with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
            client.infer("nope", [big])
        result = client.infer(MODEL_NAME, [good])
        np.testing.assert_allclose(
            result.as_numpy("probabilities"), bundle.predict_encoded(images), atol=1e-5
        )
    finally:
        client.close()
