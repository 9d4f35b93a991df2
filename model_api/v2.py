"""Open Inference Protocol v2 (KServe / Triton REST), so clients such as tritonclient.http work.

Inputs accepted by `POST /v2/models/{name}/infer` (exactly one input tensor, any name):
  - BYTES [N]: encoded PNG/JPEG images, preprocessed inside the served graph; data as
    the binary tensor extension (what tritonclient sends) or JSON base64 strings;
  - FP32 [N, H, W, C]: already preprocessed pixels in [0, 1] (H, W, C from the manifest).
Output: `probabilities` FP32 [N, classes], as JSON data or, when the request asks
`binary_data` for it, as the binary tensor extension. Bad shapes get 422, bad data 400.
"""

from __future__ import annotations

import base64
import binascii
import struct
import time
from typing import Any

import numpy as np
import orjson
from flask import Blueprint, Response, current_app, g, jsonify, request

from core import __version__
from core.numbers import ascii_int
from model_api import monitoring
from model_api.images import ImageRejected
from model_api.routes import bundle, classify, decide, reject

bp = Blueprint("v2", __name__, url_prefix="/v2")

HEADER_LENGTH = "Inference-Header-Content-Length"
OUTPUT = "probabilities"


class TensorError(ValueError):
    """A request tensor we refuse, with its HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def unknown_model(name: str, version: str | None) -> str | None:
    """Why NAME (and VERSION, when given) is not the model this server serves; None when it is."""
    model = bundle()
    if name != model.name:
        return f"unknown model {name!r}; this server serves {model.name!r}"
    if version is not None and version != str(model.version):
        return f"model {name!r} has no version {version!r}; it serves {model.version}"
    return None


def _unknown(name: str, version: str | None) -> tuple[Response, int] | None:
    message = unknown_model(name, version)
    return None if message is None else (jsonify(error=message), 404)


def metadata() -> dict[str, Any]:
    """The served model's OIP metadata: its inputs (encoded images or pixels) and one output."""
    model = bundle()
    return {
        "name": model.name,
        "versions": [str(model.version)],
        "platform": "tensorflow_keras",
        "inputs": [
            {"name": "images", "datatype": "BYTES", "shape": [-1]},
            {"name": "pixels", "datatype": "FP32", "shape": [-1, *model.input_shape]},
        ],
        "outputs": [{"name": OUTPUT, "datatype": "FP32", "shape": [-1, len(model.classes)]}],
        "parameters": {"classes": model.classes},
    }


@bp.get("")
def server_metadata() -> Response:
    return jsonify(name="mlops-model-api", version=__version__, extensions=["binary_tensor_data"])


@bp.get("/health/live")
def live() -> Response:
    return jsonify(live=True)


@bp.get("/health/ready")
def ready() -> Response:
    return jsonify(ready=True)


@bp.get("/models/<name>")
@bp.get("/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None) -> Response | tuple[Response, int]:
    if (error := _unknown(name, version)) is not None:
        return error
    return jsonify(metadata())


@bp.get("/models/<name>/ready")
@bp.get("/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None) -> Response | tuple[Response, int]:
    if (error := _unknown(name, version)) is not None:
        return error
    return jsonify(name=name, ready=True)


@bp.post("/models/<name>/infer")
@bp.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None = None) -> Response | tuple[Response, int]:
    if (error := _unknown(name, version)) is not None:
        return error
    try:
        payload, binary = _split_body()
        tensor = _one_input(payload)
        binary_out = _wants_binary(payload)
        probabilities, inputs = _run(tensor, binary)
    except TensorError as exc:
        return jsonify(error=str(exc)), exc.status
    except ImageRejected as exc:
        return reject(exc)
    latency_ms = round((time.perf_counter() - g.started) * 1000, 3)
    sampled = _images_of(tensor, binary) if monitoring.current().sample_images > 0 else None
    ids = monitoring.record_predictions(probabilities, inputs, "v2", latency_ms, sampled)
    model = bundle()
    header: dict[str, Any] = {"model_name": model.name, "model_version": str(model.version)}
    if isinstance(payload.get("id"), str):
        header["id"] = payload["id"]
    # The prediction ids POST /feedback takes (X-Request-Id holds the request's).
    # "decisions": per image, the top class or "defer to radiologist" below the version's threshold.
    decisions = [decide(row, "v2") for row in probabilities]
    header["parameters"] = {"request_id": g.request_id, "prediction_ids": ids, "decisions": decisions}
    output: dict[str, Any] = {"name": OUTPUT, "datatype": "FP32", "shape": list(probabilities.shape)}
    if not binary_out:
        output["data"] = probabilities.reshape(-1).tolist()
        header["outputs"] = [output]
        return jsonify(header)
    raw = probabilities.astype("<f4").tobytes()
    output["parameters"] = {"binary_data_size": len(raw)}
    header["outputs"] = [output]
    head = orjson.dumps(header)
    response = Response(head + raw, content_type="application/octet-stream")
    response.headers[HEADER_LENGTH] = str(len(head))
    return response


def _split_body() -> tuple[dict[str, Any], bytes]:
    """The JSON inference header and the binary tensor data after it (if any)."""
    body = request.get_data(cache=False)
    length = request.headers.get(HEADER_LENGTH)
    if length is not None:
        size = ascii_int(length)
        if size is None or size > len(body):
            raise TensorError(f"{HEADER_LENGTH} {length!r} does not fit a body of {len(body)} bytes")
        head, binary = body[:size], body[size:]
    else:
        head, binary = body, b""
    if not head:
        raise TensorError("empty request; send an inference request JSON with one input tensor")
    try:
        payload = orjson.loads(head)
    except (orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TensorError(f"the inference request is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise TensorError("the inference request must be a JSON object with an 'inputs' list")
    return payload, binary


def _one_input(payload: dict[str, Any]) -> dict[str, Any]:
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise TensorError("'inputs' must list exactly one tensor: BYTES [N] images or FP32 [N,H,W,C] pixels")
    tensor = inputs[0]
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise TensorError("input 'shape' must be a list of non-negative integers", 422)
    if tensor.get("datatype") not in ("BYTES", "FP32"):
        raise TensorError(
            f"input datatype {tensor.get('datatype')!r} is not accepted; use BYTES (encoded images) "
            "or FP32 (preprocessed pixels)"
        )
    return tensor


def _wants_binary(payload: dict[str, Any]) -> bool:
    outputs = payload.get("outputs") or []
    if not isinstance(outputs, list):
        raise TensorError("'outputs' must be a list")
    wants = False
    for out in outputs:
        if not isinstance(out, dict) or out.get("name") != OUTPUT:
            raise TensorError(f"unknown output {out!r}; this model has one output, {OUTPUT!r}")
        wants = bool((out.get("parameters") or {}).get("binary_data", False))
    params = payload.get("parameters") or {}
    return wants or (isinstance(params, dict) and bool(params.get("binary_data_output", False)))


def _binary_part(tensor: dict[str, Any], binary: bytes) -> bytes | None:
    size = (tensor.get("parameters") or {}).get("binary_data_size")
    if size is None:
        return None
    if not isinstance(size, int) or size < 0 or size > len(binary):
        raise TensorError(f"binary_data_size {size!r} does not fit the {len(binary)} bytes sent")
    return binary[:size]


def _run(tensor: dict[str, Any], binary: bytes) -> tuple[np.ndarray, monitoring.Inputs | None]:
    shape: list[int] = tensor["shape"]
    check_shape(tensor["datatype"], shape)
    if tensor["datatype"] == "FP32":
        return run_pixels(_fp32(tensor, binary, int(np.prod(shape))), shape)
    return run_images(_bytes(tensor, binary), shape)


def check_shape(datatype: str, shape: list[int]) -> None:
    """Refuse a shape this model cannot take, or a batch over MAX_BATCH (413), before reading the data."""
    limit = int(current_app.config["MAX_BATCH"])
    if datatype == "FP32":
        expected = [bundle().input_shape[i] for i in range(3)]
        if len(shape) != 4 or shape[1:] != expected:
            raise TensorError(f"FP32 input shape {shape} must be [N, {', '.join(map(str, expected))}]", 422)
    elif len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise TensorError(f"BYTES input shape {shape} must be [N] (one encoded image per element)", 422)
    if shape[0] == 0 or shape[0] > limit:
        raise TensorError(f"batch of {shape[0]}; send 1 to {limit} images", 413 if shape[0] else 422)


def run_pixels(values: np.ndarray, shape: list[int]) -> tuple[np.ndarray, monitoring.Inputs | None]:
    """Probabilities (and input statistics when monitoring) for flat FP32 VALUES of a checked SHAPE."""
    if values.size != int(np.prod(shape)):
        raise TensorError(f"{values.size} FP32 values do not fill shape {shape}", 422)
    if not np.all(np.isfinite(values)):
        raise TensorError("FP32 input holds NaN or infinite values")
    probabilities, stats = bundle().predict_pixels_with_stats(values.reshape(shape))
    return probabilities, monitoring.describe_tensors(stats) if monitoring.describe_enabled() else None


def run_images(images: list[bytes], shape: list[int]) -> tuple[np.ndarray, monitoring.Inputs | None]:
    """Probabilities (and input statistics when monitoring) for encoded IMAGES of a checked SHAPE."""
    if len(images) != shape[0]:
        raise TensorError(f"shape {shape} says {shape[0]} images but {len(images)} were sent", 422)
    return classify([(f"image {i}", data) for i, data in enumerate(images)])


def _images_of(tensor: dict[str, Any], binary: bytes) -> list[bytes] | None:
    """The encoded images of a BYTES input (for optional image sampling); None for FP32 pixels."""
    return _bytes(tensor, binary) if tensor["datatype"] == "BYTES" else None


def _fp32(tensor: dict[str, Any], binary: bytes, count: int) -> np.ndarray:
    raw = _binary_part(tensor, binary)
    try:
        if raw is not None:
            if len(raw) != count * 4:
                raise TensorError(f"{len(raw)} bytes of FP32 data do not fill shape {tensor['shape']}", 422)
            values = np.frombuffer(raw, dtype="<f4")
        else:
            values = np.asarray(tensor.get("data"), dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        raise TensorError("FP32 input 'data' must be a (flat or nested) list of numbers") from None
    return values


def _bytes(tensor: dict[str, Any], binary: bytes) -> list[bytes]:
    raw = _binary_part(tensor, binary)
    if raw is not None:
        return split_bytes(raw)
    data = tensor.get("data")
    if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
        raise TensorError("BYTES input 'data' must be a list of base64 strings (or use binary data)")
    try:
        return [base64.b64decode(item, validate=True) for item in data]
    except (binascii.Error, ValueError):
        raise TensorError("BYTES input 'data' must hold base64-encoded images") from None


def split_bytes(raw: bytes) -> list[bytes]:
    """Binary BYTES tensor data: each element is a 4-byte little-endian length, then the bytes."""
    items, pos = [], 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise TensorError("binary BYTES data ends inside an element length")
        (size,) = struct.unpack_from("<I", raw, pos)
        if pos + 4 + size > len(raw):
            raise TensorError("binary BYTES data ends inside an element")
        items.append(raw[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return items
