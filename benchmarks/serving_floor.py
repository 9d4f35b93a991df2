"""The serving floor: the least a gunicorn worker (and a gRPC server in it) can do per prediction.

    gunicorn --config model_api/gunicorn_conf.py --chdir benchmarks 'serving_floor:create_app()'

A bare WSGI callable (no Flask) that reads the body, makes the API's compiled graph call on it and
answers a small JSON. Beside it in the same worker: `POST /flask/predict`, the same call as a plain
Flask view; with BENCH_FLOOR_GRPC_PORT, a bare grpcio threaded server doing the same for ModelInfer,
and with BENCH_FLOOR_GRPC_AIO_PORT a grpc.aio one. No checks, request ids, metrics or prediction log:
not a server to ship, but the ceiling any server of this graph on gunicorn, grpcio and this machine
stays under, so bench_api.py can tell the API's own overhead from the stack's (`POST /echo` skips
the graph call: the HTTP round trip alone).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

SERVICE = "inference.GRPCInferenceService"
_servers: list[Any] = []  # a grpc.Server stops when collected: keep this worker's


def create_app() -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """Load the graph in this worker (as the API does, after the fork); start gRPC when asked."""
    from model_api.bundle import configure_threads, load_bundle

    configure_threads(int(os.environ.get("MLOPS_API_TF_THREADS", "1")))
    path = Path(os.environ["BENCH_MODEL_PATH"])
    bundle = load_bundle(path, json.loads((path.parent / "manifest.json").read_text()))
    if grpc_port := int(os.environ.get("BENCH_FLOOR_GRPC_PORT", "0")):
        _serve_grpc(bundle, grpc_port, int(os.environ.get("MLOPS_API_THREADS", "4")))
    if aio_port := int(os.environ.get("BENCH_FLOOR_GRPC_AIO_PORT", "0")):
        _serve_grpc_aio(bundle, aio_port)

    flask_view = _flask_app(bundle)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        if path == "/flask/predict":
            return flask_view(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        if path in ("/healthz", "/readyz"):
            answer = json.dumps({"status": "ready", "worker_pid": os.getpid()}).encode()
        elif path == "/echo":
            answer = b'{"label": "Normal"}'
        else:
            probabilities, _ = bundle.predict_encoded_with_stats([body])
            answer = json.dumps(dict(zip(bundle.classes, probabilities[0].tolist(), strict=True))).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))])
        return [answer]

    return app


def _flask_app(bundle: Any) -> Any:
    """The same graph call as a plain Flask view (`POST /flask/predict`): what Flask itself costs."""
    from flask import Flask, jsonify, request

    app = Flask("serving_floor")

    @app.post("/flask/predict")
    def predict() -> Any:
        probabilities, _ = bundle.predict_encoded_with_stats([request.get_data(cache=False)])
        return jsonify(dict(zip(bundle.classes, probabilities[0].tolist(), strict=True)))

    return app


def _infer(bundle: Any) -> Callable[[Any, Any], Any]:
    """ModelInfer on BUNDLE: the image in raw_input_contents, the probabilities in raw_output_contents."""
    from tritonclient.grpc import service_pb2 as pb

    def infer(request: Any, context: Any) -> Any:
        image = request.raw_input_contents[0][4:]  # a 4-byte length, then the bytes (one element)
        probabilities, _ = bundle.predict_encoded_with_stats([image])
        response = pb.ModelInferResponse(model_name=request.model_name)
        response.outputs.add(name="probabilities", datatype="FP32", shape=list(probabilities.shape))
        response.raw_output_contents.append(probabilities.tobytes())
        return response

    return infer


def _handler(infer: Callable[..., Any]) -> Any:
    import grpc
    from tritonclient.grpc import service_pb2 as pb

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "ModelInfer": grpc.unary_unary_rpc_method_handler(
                infer,
                request_deserializer=pb.ModelInferRequest.FromString,
                response_serializer=pb.ModelInferResponse.SerializeToString,
            )
        },
    )


def _serve_grpc(bundle: Any, port: int, threads: int) -> None:
    """grpcio's threaded server (the API's kind), on a port every worker shares (SO_REUSEPORT)."""
    import grpc

    server = grpc.server(ThreadPoolExecutor(threads), options=[("grpc.so_reuseport", 1)])
    server.add_generic_rpc_handlers((_handler(_infer(bundle)),))
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise RuntimeError(f"cannot listen for gRPC on 127.0.0.1:{port}")
    server.start()
    _servers.append(server)


def _serve_grpc_aio(bundle: Any, port: int) -> None:
    """grpc.aio's server on its own event loop thread; the graph runs on the loop (no thread handoff)."""
    import asyncio
    import threading

    import grpc

    infer = _infer(bundle)

    async def infer_async(request: Any, context: Any) -> Any:
        return infer(request, context)

    async def serve() -> None:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 1)])
        server.add_generic_rpc_handlers((_handler(infer_async),))
        if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
            raise RuntimeError(f"cannot listen for gRPC on 127.0.0.1:{port}")
        await server.start()
        _servers.append(server)
        await server.wait_for_termination()

    threading.Thread(target=asyncio.run, args=(serve(),), name="floor-grpc-aio", daemon=True).start()
