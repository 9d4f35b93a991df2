"""Open Inference Protocol v2 over gRPC (`inference.GRPCInferenceService`) beside the REST API.

The service classes and messages are the ones `tritonclient[grpc]` generates from KServe's and
Triton's grpc_service.proto (tritonclient.grpc.service_pb2*), not a copy of the .proto. Each gunicorn
worker runs one gRPC server on the shared port (SO_REUSEPORT: the kernel spreads connections over the
workers) with the worker's own Flask app: the same verified model bundle, request ids, metrics,
prediction log and limits as REST, because every call runs the REST code paths inside an app context.

Errors are gRPC status codes with a message: a bad tensor or shape INVALID_ARGUMENT, an unknown
model or version NOT_FOUND, a message over api.max_body_bytes, a batch over max_batch or a decode
budget exceeded RESOURCE_EXHAUSTED, a bytes string that is not the request message INVALID_ARGUMENT.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import numpy as np
from flask import Flask, g
from google.protobuf.message import DecodeError
from tritonclient.grpc import model_config_pb2 as config_pb
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from core import __version__
from model_api import monitoring, v2
from model_api.images import ImageRejected
from model_api.routes import bundle, decide

log = logging.getLogger("model_api.grpc")

SERVICE = "inference.GRPCInferenceService"
_CODES = {404: grpc.StatusCode.NOT_FOUND, 413: grpc.StatusCode.RESOURCE_EXHAUSTED}


class Malformed:
    """A request whose bytes did not parse as the method's message (answered INVALID_ARGUMENT)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class CallError(Exception):
    """A refused call: its gRPC status code and message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _code(status: int) -> grpc.StatusCode:
    """The gRPC code for the HTTP status the REST path would answer."""
    return _CODES.get(status, grpc.StatusCode.INVALID_ARGUMENT)


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    """GRPCInferenceService on APP's model; calls not listed here stay UNIMPLEMENTED (the base class)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.metrics = app.extensions["mlops_metrics"]

    # Every call goes through _call: an app context, metrics, and errors turned into status codes.
    def _call(self, method: str, context: grpc.ServicerContext, fn: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            with self.app.app_context():
                g.started = started
                result = fn()
                if "request_id" in g:
                    context.set_trailing_metadata((("x-request-id", g.request_id),))
                return result
        except CallError as exc:
            code = exc.code
            context.abort(exc.code, str(exc))
        except Exception as exc:  # a bug, not the caller's fault: say so without a traceback
            code = grpc.StatusCode.INTERNAL
            log.exception("unexpected error in %s", method)
            context.abort(code, f"internal error ({type(exc).__name__}); the server logs have details")
        finally:
            self.metrics.observe_request(
                f"/{SERVICE}/{method}", "GRPC", code.name, time.perf_counter() - started
            )

    def ServerLive(self, request: Any, context: grpc.ServicerContext) -> pb.ServerLiveResponse:
        return self._call("ServerLive", context, lambda: pb.ServerLiveResponse(live=True))

    def ServerReady(self, request: Any, context: grpc.ServicerContext) -> pb.ServerReadyResponse:
        # The worker serves gRPC only after create_app loaded and warmed the model.
        return self._call("ServerReady", context, lambda: pb.ServerReadyResponse(ready=True))

    def ServerMetadata(self, request: Any, context: grpc.ServicerContext) -> pb.ServerMetadataResponse:
        return self._call(
            "ServerMetadata",
            context,
            lambda: pb.ServerMetadataResponse(
                name="mlops-model-api", version=__version__, extensions=["binary_tensor_data"]
            ),
        )

    def ModelReady(self, request: Any, context: grpc.ServicerContext) -> pb.ModelReadyResponse:
        def ready() -> pb.ModelReadyResponse:
            _known(_checked(request).name, request.version)
            return pb.ModelReadyResponse(ready=True)

        return self._call("ModelReady", context, ready)

    def ModelMetadata(self, request: Any, context: grpc.ServicerContext) -> pb.ModelMetadataResponse:
        def describe() -> pb.ModelMetadataResponse:
            _known(_checked(request).name, request.version)
            meta = v2.metadata()
            tensor = pb.ModelMetadataResponse.TensorMetadata
            return pb.ModelMetadataResponse(
                name=meta["name"],
                versions=meta["versions"],
                platform=meta["platform"],
                inputs=[tensor(**spec) for spec in meta["inputs"]],
                outputs=[tensor(**spec) for spec in meta["outputs"]],
            )

        return self._call("ModelMetadata", context, describe)

    def ModelConfig(self, request: Any, context: grpc.ServicerContext) -> pb.ModelConfigResponse:
        def config() -> pb.ModelConfigResponse:
            _known(_checked(request).name, request.version)
            model = bundle()
            return pb.ModelConfigResponse(
                config=config_pb.ModelConfig(
                    name=model.name,
                    platform="tensorflow_keras",
                    max_batch_size=int(self.app.config["MAX_BATCH"]),
                    input=[
                        config_pb.ModelInput(name="images", data_type=config_pb.TYPE_STRING, dims=[1]),
                        config_pb.ModelInput(
                            name="pixels", data_type=config_pb.TYPE_FP32, dims=list(model.input_shape)
                        ),
                    ],
                    output=[
                        config_pb.ModelOutput(
                            name=v2.OUTPUT, data_type=config_pb.TYPE_FP32, dims=[len(model.classes)]
                        )
                    ],
                )
            )

        return self._call("ModelConfig", context, config)

    def RepositoryIndex(self, request: Any, context: grpc.ServicerContext) -> pb.RepositoryIndexResponse:
        def index() -> pb.RepositoryIndexResponse:
            _checked(request)
            model = bundle()
            entry = pb.RepositoryIndexResponse.ModelIndex(
                name=model.name, version=str(model.version), state="READY"
            )
            return pb.RepositoryIndexResponse(models=[entry])

        return self._call("RepositoryIndex", context, index)

    def ModelInfer(self, request: Any, context: grpc.ServicerContext) -> pb.ModelInferResponse:
        return self._call("ModelInfer", context, lambda: infer(_checked(request)))

    def ModelStreamInfer(
        self, requests: Iterator[Any], context: grpc.ServicerContext
    ) -> Iterator[pb.ModelStreamInferResponse]:
        # One answer per request, in order; a refused request answers error_message and the stream
        # goes on (Triton's behaviour), so one bad image does not cost a client its stream.
        for request in requests:
            try:
                response = self._call_stream(request)
            except CallError as exc:
                yield pb.ModelStreamInferResponse(error_message=f"{exc.code.name}: {exc}")
                continue
            yield pb.ModelStreamInferResponse(infer_response=response)

    def _call_stream(self, request: Any) -> pb.ModelInferResponse:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            with self.app.app_context():
                g.started = started
                return infer(_checked(request))
        except CallError as exc:
            code = exc.code
            raise
        except Exception as exc:
            code = grpc.StatusCode.INTERNAL
            log.exception("unexpected error in ModelStreamInfer")
            raise CallError(code, f"internal error ({type(exc).__name__})") from None
        finally:
            self.metrics.observe_request(
                f"/{SERVICE}/ModelStreamInfer", "GRPC", code.name, time.perf_counter() - started
            )


def _checked(request: Any) -> Any:
    """REQUEST, unless its bytes did not parse (INVALID_ARGUMENT naming why)."""
    if isinstance(request, Malformed):
        raise CallError(
            grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a valid message: {request.reason}"
        )
    return request


def _known(name: str, version: str) -> None:
    """NOT_FOUND unless NAME (and VERSION, when not empty) is the served model."""
    message = v2.unknown_model(name, version or None)
    if message is not None:
        raise CallError(grpc.StatusCode.NOT_FOUND, message)


def infer(request: Any) -> pb.ModelInferResponse:
    """ModelInfer: one input tensor (BYTES images or FP32 pixels), raw or typed contents."""
    _known(request.model_name, request.model_version)
    for out in request.outputs:
        if out.name != v2.OUTPUT:
            raise CallError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"unknown output {out.name!r}; this model has one output, {v2.OUTPUT!r}",
            )
    if len(request.inputs) != 1:
        raise CallError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{len(request.inputs)} input tensors; send exactly one: BYTES [N] images "
            "or FP32 [N,H,W,C] pixels",
        )
    if request.raw_input_contents and len(request.raw_input_contents) != 1:
        raise CallError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{len(request.raw_input_contents)} raw_input_contents for 1 input; send one or none",
        )
    tensor = request.inputs[0]
    raw = request.raw_input_contents[0] if request.raw_input_contents else None
    try:
        probabilities, inputs, images = _run(tensor, raw)
    except v2.TensorError as exc:
        raise CallError(_code(exc.status), str(exc)) from None
    except ImageRejected as exc:
        raise CallError(_code(exc.status), str(exc)) from None
    latency_ms = round((time.perf_counter() - g.started) * 1000, 3)
    ids = monitoring.record_predictions(probabilities, inputs, "grpc", latency_ms, images)
    model = bundle()
    # Per image, the top class or "defer to radiologist" below the version's threshold, as REST says.
    decisions = [decide(row, "grpc") for row in probabilities]
    parameters = {
        "request_id": pb.InferParameter(string_param=g.request_id),
        "prediction_ids": pb.InferParameter(string_param=",".join(ids)),
        "decisions": pb.InferParameter(string_param=json.dumps(decisions)),
    }
    output = pb.ModelInferResponse.InferOutputTensor(
        name=v2.OUTPUT, datatype="FP32", shape=list(probabilities.shape)
    )
    return pb.ModelInferResponse(
        model_name=model.name,
        model_version=str(model.version),
        id=request.id,
        parameters=parameters,
        outputs=[output],
        raw_output_contents=[probabilities.astype("<f4").tobytes()],
    )


def _run(tensor: Any, raw: bytes | None) -> tuple[np.ndarray, Any, list[bytes] | None]:
    """Check TENSOR's shape and run it through the REST path: probabilities, input statistics, images."""
    shape = list(tensor.shape)
    if not all(d >= 0 for d in shape):
        raise v2.TensorError("input 'shape' must be a list of non-negative integers", 422)
    if tensor.datatype not in ("BYTES", "FP32"):
        raise v2.TensorError(
            f"input datatype {tensor.datatype!r} is not accepted; use BYTES (encoded images) "
            "or FP32 (preprocessed pixels)"
        )
    v2.check_shape(tensor.datatype, shape)
    if tensor.datatype == "FP32":
        if raw is not None:
            if len(raw) % 4:
                raise v2.TensorError(f"{len(raw)} bytes of FP32 data are not whole 4-byte values", 422)
            values = np.frombuffer(raw, dtype="<f4")
        else:
            values = np.asarray(tensor.contents.fp32_contents, dtype=np.float32)
        probabilities, inputs = v2.run_pixels(values, shape)
        return probabilities, inputs, None
    images = v2.split_bytes(raw) if raw is not None else list(tensor.contents.bytes_contents)
    probabilities, inputs = v2.run_images(images, shape)
    return probabilities, inputs, images


def _lenient(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """DESERIALIZE, but bytes that do not parse become Malformed instead of grpc's INTERNAL status."""

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except (DecodeError, ValueError, RuntimeError) as exc:
            return Malformed(str(exc) or type(exc).__name__)

    return parse


class _Collect:
    """Stands in for a grpc.Server to take the generated method handlers (service_pb2_grpc)."""

    handlers: dict[str, grpc.RpcMethodHandler]

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self.handlers = handlers


def method_handlers(service: InferenceService) -> dict[str, grpc.RpcMethodHandler]:
    """The generated handlers of SERVICE, each with a request parser that cannot fail."""
    collect = _Collect()
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(service, collect)
    return {
        name: handler._replace(request_deserializer=_lenient(handler.request_deserializer))
        for name, handler in collect.handlers.items()
    }


def start(app: Flask, host: str, port: int, threads: int) -> grpc.Server:
    """Serve GRPCInferenceService for APP on HOST:PORT (shared by this server's workers); started."""
    max_bytes = int(app.config["MAX_CONTENT_LENGTH"])
    server = grpc.server(
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mlops-grpc"),
        options=[
            # Every worker binds the same port; the kernel spreads new connections over them.
            ("grpc.so_reuseport", 1),
            # The REST body limit: a larger message is refused RESOURCE_EXHAUSTED before it is parsed.
            ("grpc.max_receive_message_length", max_bytes),
            ("grpc.max_send_message_length", max_bytes),
        ],
        # Beyond this many calls in flight per worker, RESOURCE_EXHAUSTED instead of an unbounded queue.
        maximum_concurrent_rpcs=threads * 8,
    )
    handlers = method_handlers(InferenceService(app))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if server.add_insecure_port(address) == 0:  # older grpcio reports a failed bind this way
        raise RuntimeError(f"cannot listen for gRPC on {address}")
    server.start()
    return server
