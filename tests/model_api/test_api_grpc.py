"""OIP v2 over gRPC: the real `tritonclient.grpc` against `mlops serve --grpc-port` on loopback.

Every GRPCInferenceService call the server implements, the same model/ids/metrics/log as REST, and
bad input of every kind (unknown model, bad shapes, undecodable images, oversized messages, bytes that
are no protobuf at all, fuzzed messages) answered with a gRPC status, never a crash.
"""

from __future__ import annotations

import io
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from queue import Queue

import grpc
import numpy as np
import pytest
import requests
import tritonclient.grpc as triton
from api_testlib import CLASSES, MODEL_NAME, image_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from live_server import Server, start_serve, stop_server
from PIL import Image
from polling import wait_for
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc
from tritonclient.utils import InferenceServerException

from core.processes import free_port
from registry.monitoring_log import read_records
from registry.store import open_store

pytestmark = pytest.mark.slow

TOKEN = "grpc-test-feedback-token"
MAX_BODY = 300_000
INFER = "/inference.GRPCInferenceService/ModelInfer"
REFUSALS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED}


class Live:
    def __init__(self, server: Server, grpc_port: int, store: str) -> None:
        self.server, self.store = server, store
        self.address = f"127.0.0.1:{grpc_port}"
        self.client = triton.InferenceServerClient(self.address)
        self.channel = grpc.insecure_channel(self.address)
        self.stub = pb_grpc.GRPCInferenceServiceStub(self.channel)


@pytest.fixture(scope="module")
def live(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp("grpc")
    grpc_port = free_port()
    store = f"file://{folder / 'store'}"
    env = {
        "MLOPS_API_GRPC_PORT": str(grpc_port),
        "MLOPS_API_MAX_BODY_BYTES": str(MAX_BODY),
        "MLOPS_MONITOR_STORE": store,
        "MLOPS_MONITOR_LOG_FLUSH_INTERVAL_S": "0.2",
        "MLOPS_FEEDBACK_TOKEN": TOKEN,
        "MLOPS_REQUEST_ID_SECRET": secrets.token_hex(32),
    }
    server = start_serve(str(model_dir / "model.keras"), folder, env=env)
    try:
        live = Live(server, grpc_port, store)
        # /readyz answered from one worker; wait until gRPC answers too.
        wait_for("gRPC to answer", lambda: _live(live.client), timeout_s=60, interval_s=0.2)
        yield live
    finally:
        stop_server(server)


def _live(client: triton.InferenceServerClient) -> bool:
    try:
        return client.is_server_live()
    except InferenceServerException:
        return False


def images_input(*images: bytes) -> triton.InferInput:
    tensor = triton.InferInput("images", [len(images)], "BYTES")
    tensor.set_data_from_numpy(np.array(list(images), dtype=object))
    return tensor


def status_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code()


def triton_status(call) -> str:
    with pytest.raises(InferenceServerException) as raised:
        call()
    return raised.value.status()


def test_health_and_metadata_calls(live: Live):
    client = live.client
    assert client.is_server_live() is True
    assert client.is_server_ready() is True
    assert client.is_model_ready(MODEL_NAME) is True
    assert client.is_model_ready(MODEL_NAME, "7") is True
    server = client.get_server_metadata(as_json=True)
    assert server["name"] == "mlops-model-api" and "binary_tensor_data" in server["extensions"]
    meta = client.get_model_metadata(MODEL_NAME, as_json=True)
    assert meta["versions"] == ["7"]
    assert {(t["name"], t["datatype"]) for t in meta["inputs"]} == {("images", "BYTES"), ("pixels", "FP32")}
    assert meta["outputs"][0]["name"] == "probabilities" and meta["outputs"][0]["shape"] == ["-1", "3"]
    config = client.get_model_config(MODEL_NAME, as_json=True)["config"]
    assert config["name"] == MODEL_NAME and config["max_batch_size"] == 16
    index = client.get_model_repository_index(as_json=True)["models"]
    assert index == [{"name": MODEL_NAME, "version": "7", "state": "READY"}]


def test_infer_matches_rest_and_issues_ids_feedback_takes(live: Live):
    image = image_bytes(seed=11)
    rest = live.server.post("/predict", data=image, headers={"Content-Type": "image/png"}).json()
    result = live.client.infer(MODEL_NAME, [images_input(image)], request_id="client-7")
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (1, 3)
    assert np.allclose(probabilities[0], [rest["probabilities"][c] for c in CLASSES], atol=1e-5)
    response = result.get_response()
    assert response.id == "client-7" and response.model_version == "7"
    # The same decision as REST's (the top class, or "defer to radiologist" under the threshold).
    assert json.loads(response.parameters["decisions"].string_param) == [rest["decision"]]
    prediction_id = response.parameters["prediction_ids"].string_param
    assert prediction_id == response.parameters["request_id"].string_param
    # Signed with the deployment's key, as REST's: POST /feedback takes it, and refuses a made-up one.
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = {"request_id": prediction_id, "label": CLASSES[1]}
    assert live.server.post("/feedback", json=body, headers=auth).status_code == 202
    forged = {"request_id": secrets.token_hex(16), "label": CLASSES[1]}
    assert live.server.post("/feedback", json=forged, headers=auth).status_code != 202
    # Logged like REST's, endpoint "grpc", and counted in /metrics by gRPC method and status.
    logged = wait_for(
        "the gRPC prediction in the log",
        lambda: [
            r
            for r in read_records(open_store(live.store), MODEL_NAME, "predictions", 0, time.time() + 60)
            if r["id"] == prediction_id
        ],
    )
    assert logged[0]["endpoint"] == "grpc" and logged[0]["input"]["format"] == "PNG"
    metrics = live.server.get("/metrics").text
    assert f'endpoint="{INFER}",method="GRPC",status="OK"' in metrics


def test_a_batch_typed_contents_and_pixels(live: Live):
    images = [image_bytes(seed=s) for s in (1, 2, 3)]
    batch = live.client.infer(MODEL_NAME, [images_input(*images)]).as_numpy("probabilities")
    assert batch.shape == (3, 3) and np.allclose(batch.sum(axis=1), 1, atol=1e-5)
    # Typed contents (bytes_contents) instead of raw_input_contents: the same answer.
    request = pb.ModelInferRequest(model_name=MODEL_NAME)
    tensor = request.inputs.add(name="images", datatype="BYTES", shape=[3])
    tensor.contents.bytes_contents.extend(images)
    typed = live.stub.ModelInfer(request)
    assert np.allclose(np.frombuffer(typed.raw_output_contents[0], "<f4").reshape(3, 3), batch, atol=1e-6)
    # FP32 pixels, raw (tritonclient) and typed (fp32_contents).
    pixels = np.random.default_rng(0).random((2, 64, 64, 1), dtype=np.float32)
    tensor = triton.InferInput("pixels", list(pixels.shape), "FP32")
    tensor.set_data_from_numpy(pixels)
    raw = live.client.infer(MODEL_NAME, [tensor]).as_numpy("probabilities")
    request = pb.ModelInferRequest(model_name=MODEL_NAME, model_version="7")
    typed_pixels = request.inputs.add(name="pixels", datatype="FP32", shape=list(pixels.shape))
    typed_pixels.contents.fp32_contents.extend(pixels.reshape(-1).tolist())
    answer = live.stub.ModelInfer(request)
    assert np.allclose(np.frombuffer(answer.raw_output_contents[0], "<f4").reshape(2, 3), raw, atol=1e-6)


def test_stream_infer_answers_each_request_and_survives_a_bad_one(live: Live):
    answers: Queue = Queue()
    live.client.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        live.client.async_stream_infer(MODEL_NAME, [images_input(image_bytes(seed=4))], request_id="a")
        live.client.async_stream_infer(MODEL_NAME, [images_input(b"not an image")], request_id="b")
        live.client.async_stream_infer(MODEL_NAME, [images_input(image_bytes(seed=5))], request_id="c")
        got = [answers.get(timeout=30) for _ in range(3)]
    finally:
        live.client.stop_stream()
    assert got[0][1] is None and got[0][0].as_numpy("probabilities").shape == (1, 3)
    assert got[1][0] is None and "INVALID_ARGUMENT" in str(got[1][1])
    assert got[2][1] is None and got[2][0].get_response().id == "c"


def test_refusals_are_status_codes_with_reasons(live: Live):
    client = live.client
    image = image_bytes(seed=6)
    assert triton_status(lambda: client.is_model_ready("other-model")) == "StatusCode.NOT_FOUND"
    assert triton_status(lambda: client.infer("other-model", [images_input(image)])) == "StatusCode.NOT_FOUND"
    assert triton_status(lambda: client.infer(MODEL_NAME, [images_input(image)], model_version="8")) == (
        "StatusCode.NOT_FOUND"
    )
    # Bad shapes and data.
    wrong = triton.InferInput("pixels", [1, 32, 32, 1], "FP32")
    wrong.set_data_from_numpy(np.zeros((1, 32, 32, 1), np.float32))
    with pytest.raises(InferenceServerException, match=r"must be \[N, 64, 64, 1\]") as raised:
        client.infer(MODEL_NAME, [wrong])
    assert raised.value.status() == "StatusCode.INVALID_ARGUMENT"
    ints = triton.InferInput("pixels", [1, 64, 64, 1], "INT32")
    ints.set_data_from_numpy(np.zeros((1, 64, 64, 1), np.int32))
    assert triton_status(lambda: client.infer(MODEL_NAME, [ints])) == "StatusCode.INVALID_ARGUMENT"
    with pytest.raises(InferenceServerException, match=r"could not be decoded|not an image") as raised:
        client.infer(MODEL_NAME, [images_input(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)])
    assert raised.value.status() == "StatusCode.INVALID_ARGUMENT"
    nan = triton.InferInput("pixels", [1, 64, 64, 1], "FP32")
    nan.set_data_from_numpy(np.full((1, 64, 64, 1), np.nan, np.float32))
    assert triton_status(lambda: client.infer(MODEL_NAME, [nan])) == "StatusCode.INVALID_ARGUMENT"
    out = triton.InferRequestedOutput("logits")
    assert triton_status(lambda: client.infer(MODEL_NAME, [images_input(image)], outputs=[out])) == (
        "StatusCode.INVALID_ARGUMENT"
    )
    metrics = live.server.get("/metrics").text
    assert f'endpoint="{INFER}",method="GRPC",status="NOT_FOUND"' in metrics


def flat_png(width: int, height: int) -> bytes:
    """A WIDTH x HEIGHT black PNG: a few KiB that would decode to WIDTH x HEIGHT bytes."""
    out = io.BytesIO()
    Image.new("L", (width, height)).save(out, "PNG")
    return out.getvalue()


def test_too_large_is_resource_exhausted(live: Live):
    client = live.client
    # A message over api.max_body_bytes, refused before it is parsed.
    big = triton.InferInput("images", [1], "BYTES")
    big.set_data_from_numpy(np.array([b"\0" * (MAX_BODY + 10)], dtype=object))
    assert triton_status(lambda: client.infer(MODEL_NAME, [big])) == "StatusCode.RESOURCE_EXHAUSTED"
    # A batch over max_batch, and an image whose header is over the decode limits (nothing decoded).
    many = images_input(*[image_bytes(size=(8, 8))] * 17)
    assert triton_status(lambda: client.infer(MODEL_NAME, [many])) == "StatusCode.RESOURCE_EXHAUSTED"
    bomb = images_input(flat_png(7000, 7000))  # 49 M pixels; the limit is 40 M
    with pytest.raises(InferenceServerException, match="limit") as raised:
        client.infer(MODEL_NAME, [bomb])
    assert raised.value.status() == "StatusCode.RESOURCE_EXHAUSTED"


def test_bytes_that_are_no_request_message_are_invalid_argument(live: Live):
    for method in ("ModelInfer", "ModelReady", "ModelMetadata"):
        call = live.channel.unary_unary(f"/inference.GRPCInferenceService/{method}")
        # A truncated field (tag 1, length 50, 3 bytes) and a wire type that does not exist.
        for garbage in (b"\x0a\x32abc", b"\x0f\xff\xff\xff"):
            assert status_of(lambda call=call, garbage=garbage: call(garbage, timeout=30)) == (
                grpc.StatusCode.INVALID_ARGUMENT
            )
    stream = live.channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")
    valid = pb.ModelInferRequest(model_name=MODEL_NAME)
    tensor = valid.inputs.add(name="images", datatype="BYTES", shape=[1])
    tensor.contents.bytes_contents.append(image_bytes(seed=8))
    replies = [
        pb.ModelStreamInferResponse.FromString(r)
        for r in stream(iter([b"\x0a\x32abc", valid.SerializeToString()]))
    ]
    assert "INVALID_ARGUMENT" in replies[0].error_message and not replies[1].error_message
    assert live.client.is_server_live()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(max_size=400))
def test_fuzzed_bytes_get_a_refusal_never_a_crash(live: Live, garbage: bytes):
    call = live.channel.unary_unary(INFER)
    try:
        call(garbage, timeout=30)
    except grpc.RpcError as exc:
        assert exc.code() in REFUSALS, (exc.code(), exc.details())


tensor_messages = st.builds(
    lambda name, datatype, shape, raw, typed, version: (name, datatype, shape, raw, typed, version),
    st.sampled_from([MODEL_NAME, "", "x" * 300]),
    st.sampled_from(["BYTES", "FP32", "INT8", "", "BF16"]),
    st.lists(st.integers(-3, 2**40), max_size=5),
    st.one_of(st.none(), st.binary(max_size=300)),
    st.lists(st.binary(max_size=60), max_size=4),
    st.sampled_from(["", "7", "8", "-1"]),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=tensor_messages, inputs=st.integers(0, 2))
def test_fuzzed_requests_get_a_refusal_never_a_crash(live: Live, message, inputs: int):
    name, datatype, shape, raw, typed, version = message
    request = pb.ModelInferRequest(model_name=name, model_version=version)
    for _ in range(inputs):
        tensor = request.inputs.add(name="in", datatype=datatype, shape=shape)
        tensor.contents.bytes_contents.extend(typed)
    if raw is not None:
        request.raw_input_contents.append(raw)
    try:
        live.stub.ModelInfer(request, timeout=30)
    except grpc.RpcError as exc:
        assert exc.code() in REFUSALS, (exc.code(), exc.details())
    # REST is unaffected by whatever gRPC got.
    assert requests.get(live.server.url + "/readyz", timeout=30).status_code == 200
