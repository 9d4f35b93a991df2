"""Prediction API benchmark: the API under gunicorn vs a naive Flask app vs the raw model call.

    .venv/bin/python benchmarks/bench_api.py [--quick]

One run, loopback only, bounded request counts, one model (a small CNN like training's
small_cnn: 64x64x1 input, 3 classes, random weights: latency does not depend on the weights):
- raw graph call: the API's compiled tf.function (decode + preprocess + model) called in-process;
- explain graph call: the Grad-CAM function (model_api/explain.py) on the same image, in-process;
- model.predict: the same model's `model.predict` on a preprocessed array, in-process;
- API: `POST /predict` with a PNG body to model_api under gunicorn (model_api/gunicorn_conf.py);
- API explain: `POST /predict?explain=1` to the same server, right after the plain rows (the
  baseline is in the same run), so the saliency map's cost reads against plain predictions;
- naive Flask: the usual tutorial app (below): PIL decode, numpy preprocessing, `model.predict`
  per request, under the same gunicorn settings.
Latency: sequential requests over one keep-alive connection (p50/p99). Throughput: 8 client
threads, each with its own keep-alive connection. Goals: API p50 within 2x of the raw call;
API throughput several times the naive app's; plain /predict no slower than before the explain
path existed (compare this table with one from the commit before it).
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from core.processes import free_port, terminate, wait_ready

CLASSES = ["COVID", "Normal", "Viral Pneumonia"]
HERE = Path(__file__).resolve().parent
CLIENTS = 8


def create_naive_app():
    """The tutorial pattern: decode with PIL, preprocess in numpy, `model.predict` per request."""
    import keras
    from flask import Flask, jsonify, request
    from PIL import Image

    app = Flask(__name__)
    model = keras.saving.load_model(os.environ["BENCH_MODEL_PATH"], compile=False)

    @app.post("/predict")
    def predict():
        image = Image.open(io.BytesIO(request.get_data())).convert("L").resize((64, 64))
        x = np.asarray(image, dtype=np.float32)[None, ..., None] / 255.0
        probs = model.predict(x, verbose=0)[0]
        return jsonify(
            label=CLASSES[int(np.argmax(probs))],
            probabilities=dict(zip(CLASSES, probs.tolist(), strict=True)),
        )

    @app.get("/readyz")
    def ready():
        return jsonify(status="ready")

    return app


def build_model(folder: Path) -> Path:
    """A small CNN like training's small_cnn, saved with its manifest."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64, 64, 1)),
            keras.layers.Conv2D(16, 3, activation="relu", padding="same"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu", padding="same"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, activation="relu", padding="same"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(len(CLASSES), activation="softmax"),
        ]
    )
    model.save(folder / "model.keras")
    manifest = {
        "name": "bench-model",
        "version": 1,
        "model_file": "model.keras",
        "classes": CLASSES,
        "preprocessing": {"image_size": 64, "channels": 1},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder / "model.keras"


def test_image() -> bytes:
    """A 256x256 grayscale PNG: a downscaled X-ray's size class."""
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (256, 256), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "L").save(out, "PNG")
    return out.getvalue()


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = np.array(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def time_calls(fn: Callable[[], object], count: int) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def start_gunicorn(app: str, port: int, model_path: Path, workers: int, threads: int, chdir: Path | None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "PROMETHEUS_"))}
    env.update(
        {
            "MLOPS_API_PORT": str(port),
            "MLOPS_API_WORKERS": str(workers),
            "MLOPS_API_THREADS": str(threads),
            "MLOPS_API_TF_THREADS": "1",
            "MLOPS_API_MODEL_REF": str(model_path),
            "MLOPS_HOME": str(model_path.parent / ".mlops"),
            "BENCH_MODEL_PATH": str(model_path),
            "TF_NUM_INTRAOP_THREADS": "1",  # the naive app gets the same TF thread budget
            "TF_NUM_INTEROP_THREADS": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
    )
    command = [sys.executable, "-m", "gunicorn", "--config", str(HERE.parent / "model_api/gunicorn_conf.py")]
    if chdir:
        command += ["--chdir", str(chdir)]
    process = subprocess.Popen([*command, app], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    why = wait_ready(f"http://127.0.0.1:{port}/readyz", 180, lambda: process.poll() is None, 0.5)
    if why is None:
        return process
    if process.poll() is not None:
        raise SystemExit(f"{app} exited: {process.stderr.read().decode()[-2000:]}")
    stop(process)
    raise SystemExit(f"{app} {why}")


def stop(process: subprocess.Popen) -> None:
    terminate(process, 30)


def http_bench(
    port: int, body: bytes, latency_n: int, throughput_n: int, path: str = "/predict"
) -> tuple[float, float, float]:
    """(p50 ms, p99 ms) sequential over keep-alive, and req/s with CLIENTS concurrent connections."""

    def post(conn: http.client.HTTPConnection) -> None:
        conn.request("POST", path, body=body, headers={"Content-Type": "image/png"})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"request failed: HTTP {response.status}")

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for _ in range(10):
        post(conn)  # warm both workers' connections and caches
    p50, p99 = percentiles(time_calls(lambda: post(conn), latency_n))
    conn.close()

    def client(n: int) -> None:
        own = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(n):
            post(own)
        own.close()

    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(client, [throughput_n // CLIENTS] * CLIENTS))
    rate = (throughput_n // CLIENTS * CLIENTS) / (time.perf_counter() - start)
    return p50, p99, rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (about a minute)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers for both apps")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker for both apps")
    args = parser.parse_args(argv)
    latency_n, throughput_n = (100, 200) if args.quick else (300, 800)
    naive_lat_n, naive_tp_n = (40, 80) if args.quick else (100, 240)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from model_api.bundle import configure_threads, load_bundle

    configure_threads(1)
    body = test_image()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        model_path = build_model(Path(tmp))
        manifest = json.loads((Path(tmp) / "manifest.json").read_text())
        print("raw calls in-process ...", flush=True)
        bundle = load_bundle(model_path, manifest)
        time_calls(lambda: bundle.predict_encoded([body]), 20)  # same warm-up the servers get
        raw = time_calls(lambda: bundle.predict_encoded([body]), latency_n)

        import keras

        model = keras.saving.load_model(model_path, compile=False)
        pixels = np.zeros((1, 64, 64, 1), np.float32)
        time_calls(lambda: model.predict(pixels, verbose=0), 5)
        naive_raw = time_calls(lambda: model.predict(pixels, verbose=0), naive_lat_n)
        p50, p99 = percentiles(naive_raw)
        rows.append(("model.predict (in-process)", p50, p99, 1 / statistics.mean(naive_raw)))

        time_calls(lambda: bundle.explain_encoded([body]), 20)
        explain_raw = time_calls(lambda: bundle.explain_encoded([body]), latency_n)
        rows.append(
            ("explain graph call (in-process)", *percentiles(explain_raw), 1 / statistics.mean(explain_raw))
        )

        for label, app, chdir, n_lat, n_tp in (
            ("API /predict (gunicorn)", "model_api:create_app()", None, latency_n, throughput_n),
            ("naive Flask (gunicorn)", "bench_api:create_naive_app()", HERE, naive_lat_n, naive_tp_n),
        ):
            print(f"{label}: starting {args.workers} workers x {args.threads} threads ...", flush=True)
            port = free_port()
            process = start_gunicorn(app, port, model_path, args.workers, args.threads, chdir)
            try:
                rows.append((label, *http_bench(port, body, n_lat, n_tp)))
                if chdir is None:  # the same server, straight after: plain is the baseline in this run
                    explained = http_bench(port, body, n_lat, n_tp // 2, "/predict?explain=1")
                    rows.append(("API /predict?explain=1", *explained))
            finally:
                stop(process)

        # Measured again after the servers: the machine is shared, so keep the faster (stricter) run.
        again = time_calls(lambda: bundle.predict_encoded([body]), latency_n)
        raw = min(raw, again, key=lambda run: percentiles(run)[0])
        rows.insert(0, ("raw graph call (in-process)", *percentiles(raw), 1 / statistics.mean(raw)))

    raw_p50 = rows[0][1]
    print(
        f"\nimage 256x256 PNG ({len(body)} bytes); {args.workers} workers x {args.threads} threads; "
        f"throughput with {CLIENTS} concurrent clients (in-process rows: 1 thread, sequential)"
    )
    print(f"{'':30} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'p50 / raw':>10}")
    for label, p50, p99, rate in rows:
        print(f"{label:30} {p50:8.2f} {p99:8.2f} {rate:8.1f} {p50 / raw_p50:9.2f}x")
    by_label = {row[0]: row for row in rows}
    api, naive = by_label["API /predict (gunicorn)"], by_label["naive Flask (gunicorn)"]
    explained, explain_raw_row = (
        by_label["API /predict?explain=1"],
        by_label["explain graph call (in-process)"],
    )
    print(f"\nAPI p50 / raw p50: {api[1] / raw_p50:.2f}x (goal <= 2x)")
    print(f"API throughput / naive throughput: {api[3] / naive[3]:.1f}x (goal: several times)")
    print(f"API p50 vs naive p50: {naive[1] / api[1]:.1f}x faster")
    print(
        f"explain: +{explained[1] - api[1]:.2f} ms p50 over plain /predict "
        f"({explained[1] / api[1]:.2f}x); graph alone {explain_raw_row[1]:.2f} ms vs {raw_p50:.2f} ms plain"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
