"""Prediction API benchmark: REST JSON, REST binary and gRPC against the raw compiled call, one run.

    .venv/bin/python benchmarks/bench_api.py [--quick] [--baseline-ref REF] [--extras]

One run, loopback only, bounded request counts. Models: a small CNN like training's small_cnn (64x64x1,
3 classes) and, for the batching table, keras.applications.EfficientNetB0(weights=None) at 224x224x3
(random weights: latency does not depend on them; nothing is downloaded). Rows, all with the
prediction log on (the production setting; a local-folder store):
- raw graph call: the API's compiled graph (decode + preprocess + model + statistics) in-process;
- API /predict: a PNG body, JSON answer (the API's own endpoint);
- REST JSON: OIP v2 `POST /v2/models/{name}/infer`, the image base64 in JSON, JSON answer;
- REST binary: the same with the binary tensor extension both ways (what tritonclient.http sends);
- gRPC: OIP v2 ModelInfer with raw_input_contents (what tritonclient.grpc sends);
- gthread rows: /predict and REST binary served by this checkout under gunicorn's plain gthread worker
  (GUNICORN_CMD_ARGS), against the serving worker (model_api/gunicorn_worker.py);
- floor rows (benchmarks/serving_floor.py, --no-floor skips them): the same graph call behind a bare
  WSGI app, a plain Flask view, a bare grpcio servicer and a grpc.aio one, under the same gunicorn
  settings, and `/echo` (the HTTP round trip without the graph): the ceiling of this stack, so the
  table tells the API's own cost from the server's and the client's (CPU per request of each);
- baseline rows: /predict and REST binary served by REF's code (`git archive REF`, default: the commit
  this branch started from) under the same gunicorn settings, in the same run;
- batching: /predict at 8 clients with adaptive batching off and on, for both models.
Clients are light (prebuilt bodies over http.client, prebuilt protobuf bytes over a grpc channel per
client, one connection each) so the client costs every row alike. Latency: sequential requests over
one connection (p50/p99). Throughput: 8 client threads; p50/p99 under that load are printed too.
--extras adds the explain graph, model.predict and the naive Flask app rows of earlier issues.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from core.processes import free_port, terminate, wait_ready

MODEL_NAME = "bench-model"

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


def build_efficientnet(folder: Path) -> Path:
    """EfficientNetB0 (random weights, 224x224x3, 3 classes), saved with its manifest."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.EfficientNetB0(weights=None, input_shape=(224, 224, 3), classes=len(CLASSES))
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    manifest = {
        "name": MODEL_NAME,
        "version": 1,
        "model_file": "model.keras",
        "classes": CLASSES,
        "preprocessing": {"image_size": 224, "channels": 3},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder / "model.keras"


def test_image(mode: str = "L") -> bytes:
    """A 256x256 PNG (grayscale, or RGB for EfficientNet): a downscaled X-ray's size class."""
    from PIL import Image

    shape = (256, 256) if mode == "L" else (256, 256, 3)
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, mode).save(out, "PNG")
    return out.getvalue()


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = np.array(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def time_calls(fn: Callable[[], object], count: int, pause_s: float = 0.0) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if pause_s:
            time.sleep(pause_s)
    return times


def start_gunicorn(
    app: str,
    port: int,
    model_path: Path,
    workers: int,
    threads: int,
    chdir: Path | None,
    extra_env: dict[str, str] | None = None,
    code: Path | None = None,
):
    """gunicorn with CODE's gunicorn_conf (default: this checkout's) and PYTHONPATH=CODE when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "PROMETHEUS_"))}
    env.update(
        {
            "MLOPS_API_PORT": str(port),
            "MLOPS_API_WORKERS": str(workers),
            "MLOPS_API_THREADS": str(threads),
            "MLOPS_API_TF_THREADS": "1",
            "MLOPS_API_MODEL_REF": str(model_path),
            "MLOPS_HOME": str(model_path.parent / f".mlops-{port}"),
            "MLOPS_MONITOR_LOG_PREDICTIONS": "true",  # the production setting
            "BENCH_MODEL_PATH": str(model_path),
            "TF_NUM_INTRAOP_THREADS": "1",  # the naive app gets the same TF thread budget
            "TF_NUM_INTEROP_THREADS": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            **(extra_env or {}),
        }
    )
    if code is not None:
        env["PYTHONPATH"] = str(code)  # ahead of the editable install's finder (sys.meta_path, last)
    config = (code or HERE.parent) / "model_api/gunicorn_conf.py"
    command = [sys.executable, "-m", "gunicorn", "--config", str(config)]
    if chdir:
        command += ["--chdir", str(chdir)]
    process = subprocess.Popen([*command, app], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    why = wait_ready(f"http://127.0.0.1:{port}/readyz", 300, lambda: process.poll() is None, 0.5)
    if why is None:
        wait_workers(port, workers, process)
        return process
    if process.poll() is not None:
        raise SystemExit(f"{app} exited: {process.stderr.read().decode()[-2000:]}")
    stop(process)
    raise SystemExit(f"{app} {why}")


def wait_workers(port: int, workers: int, process: subprocess.Popen, timeout_s: float = 300) -> None:
    """Until /healthz has answered from WORKERS distinct processes: every worker loaded and warm."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while len(seen) < workers and time.monotonic() < deadline and process.poll() is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/healthz")
            seen.add(int(json.loads(conn.getresponse().read()).get("worker_pid", 0)))
        except (OSError, ValueError):
            time.sleep(0.2)
        finally:
            conn.close()


def cpu_seconds(master: int) -> float:
    """User + system CPU seconds of gunicorn's master and its workers so far (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [master]
    for task in Path(f"/proc/{master}/task").iterdir():
        pids += [int(p) for p in (task / "children").read_text().split()]
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def stop(process: subprocess.Popen) -> None:
    terminate(process, 30)


def http_bench(
    port: int, body: bytes, latency_n: int, throughput_n: int, path: str = "/predict"
) -> tuple[float, float, float]:
    """(p50 ms, p99 ms) sequential over keep-alive, and req/s with CLIENTS concurrent connections."""
    return http_load(port, path, body, {"Content-Type": "image/png"}, latency_n, throughput_n)[:3]


# sequential times, times under load, load seconds, CPU seconds (server, or this process), calls,
# the clients' CPU seconds under load (this process)
Samples = tuple[list[float], list[float], float, float, int, float]


def http_load(
    port: int, path: str, body: bytes, headers: dict[str, str], latency_n: int, throughput_n: int
) -> tuple[float, float, float, float, float]:
    """p50/p99 sequential, req/s with CLIENTS connections, and p50/p99 under that load (ms)."""
    return summarize([http_sample(port, path, body, headers, latency_n, throughput_n)])[:5]


def http_sample(
    port: int,
    path: str,
    body: bytes,
    headers: dict[str, str],
    latency_n: int,
    throughput_n: int,
    pid: int = 0,
) -> Samples:
    def post(conn: http.client.HTTPConnection) -> None:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"request failed: HTTP {response.status}")

    def connect() -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    return sample(connect, post, lambda conn: conn.close(), latency_n, throughput_n, pid)


def grpc_sample(port: int, request: bytes, latency_n: int, throughput_n: int, pid: int = 0) -> Samples:
    """The same as http_sample for ModelInfer: prebuilt request bytes, one channel (connection) per client."""
    import grpc

    def connect():
        # A local subchannel pool: each client its own TCP connection (spread over the workers).
        channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
        return channel, channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")

    return sample(
        connect, lambda c: c[1](request, timeout=60), lambda c: c[0].close(), latency_n, throughput_n, pid
    )


def sample(connect, call, close, latency_n: int, throughput_n: int, pid: int = 0) -> Samples:
    """Sequential then concurrent calls; with PID (gunicorn's master), the server's CPU seconds too."""
    cpu_before = cpu_seconds(pid) if pid else 0.0
    conn = connect()
    for _ in range(5):
        call(conn)  # warm the connection and the worker behind it
    sequential = time_calls(lambda: call(conn), latency_n)
    close(conn)
    each = max(throughput_n // CLIENTS, 1)

    def client(_: int) -> list[float]:
        own = connect()
        call(own)
        try:
            return time_calls(lambda: call(own), each)
        finally:
            close(own)

    start, client_cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(CLIENTS) as pool:
        loaded = [t for run in pool.map(client, range(CLIENTS)) for t in run]
    seconds, client_cpu = time.perf_counter() - start, time.process_time() - client_cpu
    calls = 5 + len(sequential) + CLIENTS + len(loaded)
    return sequential, loaded, seconds, (cpu_seconds(pid) - cpu_before) if pid else 0.0, calls, client_cpu


def summarize(samples: list[Samples]) -> tuple[float, float, float, float, float, float, float]:
    """Pooled rounds: p50/p99 sequential, req/s under load (requests / seconds), p50/p99 under load,
    server CPU ms per request, the clients' CPU ms per request under load."""
    sequential = [t for run in samples for t in run[0]]
    loaded = [t for run in samples for t in run[1]]
    cpu_ms = 1000 * sum(run[3] for run in samples) / sum(run[4] for run in samples)
    if not loaded:  # an in-process row: one thread, sequential
        return (*percentiles(sequential), 1 / statistics.mean(sequential), 0.0, 0.0, cpu_ms, 0.0)
    rate = len(loaded) / sum(run[2] for run in samples)
    client_ms = 1000 * sum(run[5] for run in samples) / len(loaded)
    return (*percentiles(sequential), rate, *percentiles(loaded), cpu_ms, client_ms)


def v2_json(image: bytes) -> tuple[bytes, dict[str, str]]:
    """An OIP v2 REST request with the image base64 in JSON."""
    request = {
        "inputs": [
            {"name": "images", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(image).decode()]}
        ]
    }
    return json.dumps(request).encode(), {"Content-Type": "application/json"}


def v2_binary(image: bytes) -> tuple[bytes, dict[str, str]]:
    """An OIP v2 REST request with the binary tensor extension both ways (tritonclient.http's form)."""
    data = struct.pack("<I", len(image)) + image
    header = {
        "inputs": [
            {
                "name": "images",
                "datatype": "BYTES",
                "shape": [1],
                "parameters": {"binary_data_size": len(data)},
            }
        ],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
    }
    head = json.dumps(header).encode()
    return head + data, {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(head)),
    }


def grpc_request(image: bytes) -> bytes:
    """A serialized ModelInferRequest with the image in raw_input_contents (tritonclient.grpc's form)."""
    from tritonclient.grpc import service_pb2 as pb

    request = pb.ModelInferRequest(model_name=MODEL_NAME)
    request.inputs.add(name="images", datatype="BYTES", shape=[1])
    request.raw_input_contents.append(struct.pack("<I", len(image)) + image)
    return request.SerializeToString()


def export_baseline(ref: str, folder: Path) -> Path:
    """REF's code as files (git archive), to serve beside this checkout's in the same run."""
    archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", ref], capture_output=True, check=True)
    folder.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def branch_point() -> str:
    """The commit this branch left main at (the fair baseline), or HEAD~ where there is no main."""
    for command in (["git", "merge-base", "HEAD", "main"], ["git", "rev-parse", "HEAD~"]):
        found = subprocess.run(command, cwd=HERE.parent, capture_output=True, text=True)
        if found.returncode == 0:
            return found.stdout.strip()
    raise SystemExit("no baseline commit: pass --baseline-ref")


# label, p50, p99, req/s, load p50/p99, server CPU ms/req, client CPU ms/req
Row = tuple[str, float, float, float, float, float, float, float]


def start_api(label: str, model_path: Path, args, code: Path | None = None, env: dict | None = None):
    """One server (this checkout's, or CODE's): (process, REST port, gRPC port or 0)."""
    port, grpc_port = free_port(), 0
    env = dict(env or {})
    if code is None:
        grpc_port = free_port()
        env["MLOPS_API_GRPC_PORT"] = str(grpc_port)
    print(f"{label}: starting {args.workers} workers x {args.threads} threads ...", flush=True)
    process = start_gunicorn(
        "model_api:create_app()", port, model_path, args.workers, args.threads, None, env, code
    )
    return process, port, grpc_port


def samplers(label: str, port: int, grpc_port: int, protocols: tuple[str, ...], image: bytes, pid: int = 0):
    """(row label, sampler(latency_n, throughput_n)) for each of PROTOCOLS on one server."""
    out = []
    for protocol in protocols:
        if protocol == "grpc":
            request = grpc_request(image)
            out.append(
                (f"{label} gRPC", lambda n, m, request=request: grpc_sample(grpc_port, request, n, m, pid))
            )
            continue
        path, (body, headers) = {
            "predict": ("/predict", (image, {"Content-Type": "image/png"})),
            "json": (f"/v2/models/{MODEL_NAME}/infer", v2_json(image)),
            "binary": (f"/v2/models/{MODEL_NAME}/infer", v2_binary(image)),
            "echo": ("/echo", (image, {"Content-Type": "image/png"})),
            "flask": ("/flask/predict", (image, {"Content-Type": "image/png"})),
        }[protocol]
        name = {
            "predict": "/predict",
            "json": "REST JSON",
            "binary": "REST binary",
            "echo": "/echo",
            "flask": "Flask view",
        }[protocol]
        out.append(
            (f"{label} {name}", lambda n, m, p=path, b=body, h=headers: http_sample(port, p, b, h, n, m, pid))
        )
    return out


def interleave(targets, rounds: int, counts: tuple[int, int]) -> list[Row]:
    """Measure every target in each of ROUNDS short rounds, in turn: a shared machine's load changes
    over minutes and hits every row alike; samples are pooled over the rounds. Each round starts one
    target later, so no row always follows the same one (the in-process raw call leaves TensorFlow's
    threads spinning for a moment, which would tax whichever server came next)."""
    samples: dict[str, list[Samples]] = {label: [] for label, _ in targets}
    for done in range(rounds):
        print(f"  round {done + 1}/{rounds}", flush=True)
        start = done % len(targets)
        for label, sampler in targets[start:] + targets[:start]:
            samples[label].append(sampler(counts[0] // rounds, counts[1] // rounds))
    return [(label, *summarize(runs)) for label, runs in samples.items()]


def raw_row(bundle, image: bytes, count: int) -> Row:
    time_calls(lambda: bundle.predict_encoded_with_stats([image]), 20)
    # A pause between calls, as between a client's requests: on a loaded machine a thread that never
    # sleeps is scheduled worse than a server woken per request, which would flatter the servers.
    raw = time_calls(lambda: bundle.predict_encoded_with_stats([image]), count, pause_s=0.002)
    return ("raw graph call (in-process)", *percentiles(raw), 1 / statistics.mean(raw), 0.0, 0.0, 0.0, 0.0)


def print_table(title: str, rows: list[Row], raw_p50: float) -> None:
    print(f"\n{title}")
    print(
        f"{'':34} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'p50/raw':>8} {'load p50':>9} {'load p99':>9} "
        f"{'CPU ms/req':>10} {'client CPU':>10}"
    )
    for label, p50, p99, rate, lp50, lp99, cpu, client in rows:
        print(
            f"{label:34} {p50:8.2f} {p99:8.2f} {rate:8.1f} {p50 / raw_p50:7.2f}x {lp50:9.2f} {lp99:9.2f} "
            f"{cpu:10.2f} {client:10.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers for every server")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker for every server")
    parser.add_argument(
        "--baseline-ref", help="git ref whose code serves the baseline rows (default: branch point)"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline rows")
    parser.add_argument("--no-batching", action="store_true", help="skip the batching table")
    parser.add_argument(
        "--no-gthread", action="store_true", help="skip the rows served by gunicorn's plain gthread worker"
    )
    parser.add_argument(
        "--no-floor", action="store_true", help="skip the serving floor rows (benchmarks/serving_floor.py)"
    )
    parser.add_argument("--batch", default="8,2", help="batching on: MAX_SIZE,MAX_WAIT_MS (default 8,2)")
    parser.add_argument("--extras", action="store_true", help="explain, model.predict and naive Flask rows")
    parser.add_argument("--rounds", type=int, help="alternating rounds per comparison (default 4, --quick 2)")
    args = parser.parse_args(argv)
    latency_n, throughput_n = (100, 400) if args.quick else (300, 1200)
    counts = (latency_n, throughput_n)
    args.rounds = args.rounds or (2 if args.quick else 4)
    batch_size, batch_wait = args.batch.split(",")
    batching = {"MLOPS_API_BATCH_MAX_SIZE": batch_size, "MLOPS_API_BATCH_MAX_WAIT_MS": batch_wait}

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from model_api.bundle import configure_threads, load_bundle

    configure_threads(1)
    image = test_image()
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        model_path = build_model(Path(tmp))
        manifest = json.loads((Path(tmp) / "manifest.json").read_text())
        print("raw calls in-process ...", flush=True)
        bundle = load_bundle(model_path, manifest)
        raw_row(bundle, image, 20)  # warm, as the servers are

        def raw_sampler(n: int, m: int) -> Samples:
            # Paced like requests: on a loaded machine a thread that never sleeps is scheduled worse
            # than a server woken per request, which would flatter the servers.
            cpu = time.process_time()
            times = time_calls(lambda: bundle.predict_encoded_with_stats([image]), n, pause_s=0.002)
            return times, [], 0.0, time.process_time() - cpu, n, 0.0

        rows: list[Row] = []
        servers = []
        try:
            # The raw call is measured in every round too, between the servers' turns.
            targets = [("raw graph call (in-process)", raw_sampler)]
            if not args.no_baseline:
                ref = args.baseline_ref or branch_point()
                base = export_baseline(ref, Path(tmp) / "baseline")
                process, port, _ = start_api(f"base {ref[:7]}", model_path, args, code=base)
                servers.append(process)
                targets += samplers(f"base {ref[:7]}", port, 0, ("predict", "binary"), image, process.pid)
            if not args.no_gthread:  # this checkout under gunicorn's plain gthread worker
                plain = {"GUNICORN_CMD_ARGS": "--worker-class gthread", "MLOPS_API_GRPC_PORT": "0"}
                process, port, _ = start_api("API gthread", model_path, args, env=plain)
                servers.append(process)
                targets += samplers("API gthread", port, 0, ("predict", "binary"), image, process.pid)
            if not args.no_floor:  # the stack's own cost: the same graph call with none of the API's work
                print(f"floor: starting {args.workers} workers x {args.threads} threads ...", flush=True)
                port, grpc_port, aio_port = free_port(), free_port(), free_port()
                floor_env = {
                    "MLOPS_API_GRPC_PORT": "0",
                    "BENCH_FLOOR_GRPC_PORT": str(grpc_port),
                    "BENCH_FLOOR_GRPC_AIO_PORT": str(aio_port),
                }
                process = start_gunicorn(
                    "serving_floor:create_app()",
                    port,
                    model_path,
                    args.workers,
                    args.threads,
                    HERE,
                    floor_env,
                )
                servers.append(process)
                targets += samplers(
                    "floor", port, grpc_port, ("predict", "flask", "echo", "grpc"), image, process.pid
                )
                targets += samplers("floor aio", 0, aio_port, ("grpc",), image, process.pid)
            process, port, grpc_port = start_api("API", model_path, args)
            servers.append(process)
            targets += samplers(
                "API", port, grpc_port, ("predict", "json", "binary", "grpc"), image, process.pid
            )
            rows += interleave(targets, args.rounds, counts)
        finally:
            for process in servers:
                stop(process)
        if args.extras:
            rows += extras(bundle, model_path, args, image, latency_n)
        raw = rows[0]

        batch_rows: list[tuple[str, Row, Row, float]] = []
        if not args.no_batching:
            batch_rows.append(
                (
                    "small CNN 64x64x1",
                    *batching_pair("small CNN", model_path, args, image, counts, batching),
                    raw[1],
                )
            )
            effnet = build_efficientnet(Path(tmp) / "effnet")
            rgb = test_image("RGB")
            print("EfficientNetB0 raw calls in-process ...", flush=True)
            eff_bundle = load_bundle(effnet, json.loads((effnet.parent / "manifest.json").read_text()))
            eff_raw = raw_row(eff_bundle, rgb, 30)
            del eff_bundle
            eff_counts = (20, 120) if args.quick else (40, 240)
            batch_rows.append(
                (
                    "efficientnet_b0 224x224x3",
                    *batching_pair("effnet", effnet, args, rgb, eff_counts, batching),
                    eff_raw[1],
                )
            )

    raw_p50 = rows[0][1]
    print(
        f"\nimage 256x256 PNG ({len(image)} bytes); {args.workers} workers x {args.threads} threads; "
        f"prediction log on; {CLIENTS} concurrent clients for req/s and load p50/p99 (in-process: 1 thread)"
    )
    print_table("small CNN (64x64x1)", rows, raw_p50)
    by = {row[0]: row for row in rows}
    api = by["API /predict"]
    print(f"\nAPI /predict p50 / raw p50: {api[1] / raw_p50:.2f}x (goal <= 1.5x)")
    grpc_row, binary = by["API gRPC"], by["API REST binary"]
    print(
        f"gRPC / REST binary throughput: {grpc_row[3] / binary[3]:.2f}x (goal >= 1.3x); "
        f"p50 {grpc_row[1]:.2f} vs {binary[1]:.2f} ms; server CPU per request {grpc_row[6] / binary[6]:.2f}x"
    )
    if floor := by.get("floor /predict"):
        floor_grpc, floor_aio, echo = by["floor gRPC"], by["floor aio gRPC"], by["floor /echo"]
        print(
            f"serving floor (bare WSGI + the graph call, benchmarks/serving_floor.py): p50 / raw p50 "
            f"{floor[1] / raw_p50:.2f}x; the HTTP round trip alone (/echo) {echo[1]:.2f} ms; "
            f"floor gRPC / floor REST throughput {floor_grpc[3] / floor[3]:.2f}x (grpc.aio "
            f"{floor_aio[3] / floor[3]:.2f}x)"
        )
        flask_row = by["floor Flask view"]
        print(
            f"server CPU per request: WSGI floor {floor[6]:.2f} ms, + Flask {flask_row[6] - floor[6]:+.2f} "
            f"ms, + the API's checks, ids, metrics and log {api[6] - flask_row[6]:+.2f} ms (/predict)"
        )
        cores = os.cpu_count() or 1
        for row in (api, binary, grpc_row, floor, flask_row, floor_grpc, floor_aio):
            spent = row[6] + row[7]
            print(
                f"  {row[0]:24} server + client CPU {spent:.2f} ms/req: at most "
                f"{1000 * cores / spent:6.1f} req/s on {cores} cores (measured {row[3]:.1f})"
            )
    for name in ("/predict", "REST binary"):
        if plain_row := by.get(f"API gthread {name}"):
            ours = by[f"API {name}"]
            print(
                f"{name}, lingering worker vs plain gthread: p50 {ours[1] / plain_row[1]:.2f}x, "
                f"throughput {ours[3] / plain_row[3]:.2f}x, load p99 {ours[5] / plain_row[5]:.2f}x"
            )
    for name in ("/predict", "REST binary"):
        base_row = next((r for r in rows if r[0].startswith("base ") and r[0].endswith(name)), None)
        if base_row:
            ours = by[f"API {name}"]
            print(
                f"{name} vs baseline: throughput {ours[3] / base_row[3]:.2f}x (goal >= 1.3x), "
                f"p99 {ours[2] / base_row[2]:.2f}x, load p99 {ours[5] / base_row[5]:.2f}x (goal: not worse), "
                f"server CPU per request {ours[6] / base_row[6]:.2f}x"
            )
            if floor:
                flask_rate = by["floor Flask view"][3]
                print(
                    f"  the serving floor's throughput vs this baseline: bare WSGI "
                    f"{floor[3] / base_row[3]:.2f}x, plain Flask view {flask_rate / base_row[3]:.2f}x"
                )
    if batch_rows:
        print(
            f"\nadaptive batching (/predict, max batch {batch_size}, max wait {batch_wait} ms), "
            f"{CLIENTS} clients"
        )
        print(f"{'':28} {'':5} {'p50 ms':>8} {'req/s':>8} {'load p50':>9} {'load p99':>9} {'raw p50':>8}")
        for model_label, off, on, model_raw in batch_rows:
            for mode, row in (("off", off), ("on", on)):
                print(
                    f"{model_label:28} {mode:5} {row[1]:8.2f} {row[3]:8.1f} "
                    f"{row[4]:9.2f} {row[5]:9.2f} {model_raw:8.2f}"
                )
            print(f"{'':28} on/off throughput {on[3] / off[3]:.2f}x, load p99 {on[5] / off[5]:.2f}x")
    return 0


def batching_pair(label: str, model_path: Path, args, image: bytes, counts, batching) -> tuple[Row, Row]:
    """/predict with batching off and on, two servers at once, measured in alternating rounds."""
    servers = []
    try:
        targets = []
        for mode, env in (("off", {}), ("on", batching)):
            process, port, _ = start_api(
                f"{label} batch {mode}", model_path, args, env={**env, "MLOPS_API_GRPC_PORT": "0"}
            )
            servers.append(process)
            targets += samplers(f"{label} batch {mode}", port, 0, ("predict",), image, process.pid)
        off, on = interleave(targets, args.rounds, counts)
    finally:
        for process in servers:
            stop(process)
    return off, on


def extras(bundle, model_path: Path, args, image: bytes, latency_n: int) -> list[Row]:
    """The rows of earlier issues: explain graph, model.predict, /predict?explain=1, the naive Flask app."""
    import keras

    rows: list[Row] = []
    time_calls(lambda: bundle.explain_encoded([image]), 20)
    explain = time_calls(lambda: bundle.explain_encoded([image]), latency_n)
    rows.append(
        ("explain graph call (in-process)", *percentiles(explain), 1 / statistics.mean(explain), 0, 0, 0, 0)
    )
    model = keras.saving.load_model(model_path, compile=False)
    pixels = np.zeros((1, 64, 64, 1), np.float32)
    time_calls(lambda: model.predict(pixels, verbose=0), 5)
    naive_raw = time_calls(lambda: model.predict(pixels, verbose=0), 40)
    rows.append(
        ("model.predict (in-process)", *percentiles(naive_raw), 1 / statistics.mean(naive_raw), 0, 0, 0, 0)
    )
    port = free_port()
    process = start_gunicorn(
        "model_api:create_app()",
        port,
        model_path,
        args.workers,
        args.threads,
        None,
        {"MLOPS_API_GRPC_PORT": "0"},
    )
    try:
        rows.append(
            (
                "API /predict?explain=1",
                *http_load(port, "/predict?explain=1", image, {"Content-Type": "image/png"}, 60, 200),
                0.0,
                0.0,
            )
        )
    finally:
        stop(process)
    port = free_port()
    process = start_gunicorn(
        "bench_api:create_naive_app()",
        port,
        model_path,
        args.workers,
        args.threads,
        HERE,
        {"MLOPS_API_GRPC_PORT": "0"},
    )
    try:
        rows.append(
            (
                "naive Flask (gunicorn)",
                *http_load(port, "/predict", image, {"Content-Type": "image/png"}, 40, 120),
                0.0,
                0.0,
            )
        )
    finally:
        stop(process)
    return rows


if __name__ == "__main__":
    sys.exit(main())
