"""Stand-in for `mlops serve` with the same CLI and HTTP contract, under real gunicorn.

Used by the deploy tests so they exercise real processes and sockets without TensorFlow:
each worker "loads the model" at boot (a sleep, like a real load: workers accept only after it),
then serves /readyz, /healthz, /model and /predict with the real app's JSON (checked by
tests/model_api/test_standin_contract.py). Versions listed in STANDIN_BROKEN answer
/predict with 500; versions in STANDIN_CRASH fail to boot; STANDIN_WRONG reports version+100;
STANDIN_PRIVATE_ONLY serve only the private readiness socket (fd 4), never the shared one;
STANDIN_CRASH_IF_EXISTS names a file whose presence makes every (re)start fail to boot.
"""

from __future__ import annotations

import argparse
import io
import os
import time
import uuid

NAME = "xray-classifier"
CLASSES = ["covid", "normal"]


def create_app(ref: str):
    """The stand-in app for REF: the real app's routes and JSON shapes, a brightness "model"."""
    from flask import Flask, jsonify, request
    from PIL import Image, ImageStat

    version = int(ref.rpartition(":")[2])
    listed = lambda name: str(version) in os.environ.get(name, "").split(",")  # noqa: E731
    crash_file = os.environ.get("STANDIN_CRASH_IF_EXISTS")
    if listed("STANDIN_CRASH") or (crash_file and os.path.exists(crash_file)):
        raise RuntimeError(f"cannot load model {ref}")  # gunicorn: worker boot error, master halts
    time.sleep(float(os.environ.get("STANDIN_LOAD_S", "1.0")))  # model load + warm-up
    reported = version + 100 if listed("STANDIN_WRONG") else version
    identity = {"name": NAME, "version": reported}
    app = Flask(__name__)

    # The bodies below follow model_api/routes.py; tests/model_api/test_standin_contract.py
    # compares them with the real app's, so a change there fails a test here.
    @app.get("/readyz")
    def readyz():
        return jsonify(status="ready", model=identity)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok", worker_pid=os.getpid())

    @app.get("/model")
    def model():
        preprocessing = {"image_size": 64, "channels": 1}
        return jsonify(**identity, classes=CLASSES, preprocessing=preprocessing, model_file="model.keras")

    @app.post("/predict")
    def predict():
        if listed("STANDIN_BROKEN"):
            return jsonify(error="model exploded"), 500
        started = time.perf_counter()
        data = request.files["file"].read() if "file" in request.files else request.get_data()
        image = Image.open(io.BytesIO(data)).convert("L")
        bright = ImageStat.Stat(image).mean[0] / 255.0
        request_id = uuid.uuid4().hex  # as the real API: in the body and the X-Request-Id header
        label = CLASSES[0] if bright >= 0.5 else CLASSES[1]
        response = jsonify(
            label=label,
            decision=label,  # the stand-in version has no deferral threshold: it never defers
            probabilities={CLASSES[0]: round(bright, 6), CLASSES[1]: round(1 - bright, 6)},
            model=identity,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            request_id=request_id,
        )
        response.headers["X-Request-Id"] = request_id
        return response

    return app


def main() -> None:
    from gunicorn.app.base import BaseApplication

    parser = argparse.ArgumentParser()
    parser.add_argument("verb", choices=["serve"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    version = args.model.rpartition(":")[2]
    if (
        version in os.environ.get("STANDIN_PRIVATE_ONLY", "").split(",")
        and os.environ.get("LISTEN_FDS") == "2"
    ):
        os.dup2(4, 3)  # keep only the private socket: passes its own checks, never takes shared traffic
        os.close(4)
        os.environ["LISTEN_FDS"] = "1"

    class App(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", 4)
            self.cfg.set("graceful_timeout", 20)

        def load(self):
            return create_app(args.model)

    App().run()


if __name__ == "__main__":
    main()
