"""Monitoring's cost: API throughput and p99 with the prediction log on and off; `mlops monitor` on 1M rows.

    .venv/bin/python benchmarks/bench_monitoring.py [--quick] [--records N]

1. Two API servers under gunicorn (model_api/gunicorn_conf.py, the same small CNN as bench_api.py, 2
   workers x 4 threads each), one with monitoring on (input statistics, live histograms, the prediction
   log written to a local-folder store every second) and one with it off (`monitor.log_predictions =
   false`). Both run at once and are measured in alternating rounds, so a busy shared machine slows both
   alike (16 short rounds each). Per round: p50/p99 of sequential requests over keep-alive, then
   throughput with 8 concurrent clients, and the servers' CPU time per request (from /proc: less
   sensitive to a busy machine than wall-clock throughput). Goal: <= 5% throughput lost with the log on.
2. `mlops monitor` (a real subprocess: the CLI, the store reads, PSI and the two-sample tests, the HTML
   report) over N synthetic records (default 1,000,000) in API-sized batches of 256 in a local-folder store.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_api import build_model, cpu_seconds, http_bench, stop, test_image

from core.processes import free_port

HERE = Path(__file__).resolve().parent
CLASSES = ["COVID", "Normal", "Viral Pneumonia"]
BATCH = 256


def start_api(port: int, model_path: Path, folder: Path, logging: bool) -> subprocess.Popen:
    """`gunicorn model_api:create_app()` with monitoring on or off; waits for /readyz."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "PROMETHEUS_"))}
    env.update(
        {
            "MLOPS_API_PORT": str(port),
            "MLOPS_API_WORKERS": "2",
            "MLOPS_API_THREADS": "4",
            "MLOPS_API_TF_THREADS": "1",
            "MLOPS_API_MODEL_REF": str(model_path),
            "MLOPS_HOME": str(folder / ".mlops"),
            "MLOPS_MONITOR_LOG_PREDICTIONS": "true" if logging else "false",
            "MLOPS_MONITOR_STORE": f"file://{folder / 'store'}",
            "MLOPS_MONITOR_LOG_FLUSH_INTERVAL_S": "1",
            "MLOPS_API_GRPC_PORT": "0",  # REST only: two servers at once must not share gRPC's port
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
    )
    command = [sys.executable, "-m", "gunicorn", "--config", str(HERE.parent / "model_api/gunicorn_conf.py")]
    process = subprocess.Popen(
        [*command, "model_api:create_app()"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"API exited: {process.stderr.read().decode()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.5)
    process.kill()
    raise SystemExit("API did not become ready")


def bench_api(rounds: int, latency_n: int, throughput_n: int) -> tuple[list[tuple], float, float]:
    """Per mode: median p50, p99, req/s and CPU ms per request over alternating rounds; the median
    paired throughput ratio (on / off, adjacent rounds) and the CPU ratio over all rounds."""
    body = test_image()
    results: dict[str, list[tuple[float, ...]]] = {"log on": [], "log off": []}
    with tempfile.TemporaryDirectory(prefix="bench-monitoring-") as tmp:
        model_path = build_model(Path(tmp))
        servers = {}
        try:
            for mode, logging in (("log on", True), ("log off", False)):
                folder = Path(tmp) / mode.replace(" ", "-")
                folder.mkdir()
                port = free_port()
                print(f"{mode}: starting 2 workers x 4 threads on {port} ...", flush=True)
                servers[mode] = (port, start_api(port, model_path, folder, logging))
            for r in range(rounds):
                order = list(servers) if r % 2 == 0 else list(reversed(servers))
                for mode in order:
                    port, process = servers[mode]
                    before = cpu_seconds(process.pid)
                    p50, p99, rate = http_bench(port, body, latency_n, throughput_n)
                    # Every request of the round: 10 warm-up, the sequential ones, the concurrent ones.
                    requests = 10 + latency_n + throughput_n // CLIENTS * CLIENTS
                    cpu_ms = (cpu_seconds(process.pid) - before) * 1000 / requests
                    results[mode].append((p50, p99, rate, cpu_ms))
                    print(f"  round {r + 1} {mode}: p50 {p50:.2f} ms, p99 {p99:.2f} ms, {rate:.1f} req/s, "
                          f"{cpu_ms:.2f} CPU ms/request", flush=True)  # fmt: skip
            time.sleep(2)  # one more flush interval
        finally:
            for _, process in servers.values():
                stop(process)  # graceful: each worker flushes its queue
        store = Path(tmp) / "log-on" / "store"
        logged = sum(1 for _ in store.rglob("*.parquet"))
        print(f"log on: {logged} batch objects written", flush=True)
        assert not (Path(tmp) / "log-off" / "store").exists(), "logging off must write nothing"
    rows = [
        (mode, *(statistics.median(run[i] for run in runs) for i in range(4)))
        for mode, runs in results.items()
    ]
    pairs = list(zip(results["log on"], results["log off"], strict=True))
    rate_ratio = statistics.median(on[2] / off[2] for on, off in pairs)
    # CPU: every round has the same number of requests, so the ratio of the sums is the ratio of the totals.
    cpu_ratio = sum(on[3] for on, _ in pairs) / sum(off[3] for _, off in pairs)
    return rows, rate_ratio, cpu_ratio


def synthetic_records(n: int, start: float, seed: int = 0):
    """N records shaped like the API's, in batches of BATCH."""
    rng = np.random.default_rng(seed)
    for first in range(0, n, BATCH):
        count = min(BATCH, n - first)
        means = rng.normal(0.45, 0.05, count)
        stds = rng.normal(0.2, 0.02, count)
        labels = rng.choice(len(CLASSES), count, p=[0.3, 0.4, 0.3])
        confidences = np.clip(rng.normal(0.85, 0.06, count), 0.34, 1.0)
        hists = rng.dirichlet(np.full(8, 5.0), count)
        yield [
            {
                "id": f"{first + i:032x}",
                "t": start + (first + i) * 0.001,
                "at": "",
                "model": "xray-classifier",
                "version": 1,
                "endpoint": "predict",
                "label": CLASSES[labels[i]],
                "confidence": round(float(confidences[i]), 5),
                "probabilities": {c: round(1 / 3, 5) for c in CLASSES},
                "input": {
                    "format": "PNG",
                    "width": 256,
                    "height": 256,
                    "mean": round(float(means[i]), 5),
                    "std": round(float(stds[i]), 5),
                    "hist": [round(float(v), 5) for v in hists[i]],
                },
                "latency_ms": 4.2,
            }
            for i in range(count)
        ]


def bench_monitor(n: int) -> tuple[float, float, int]:
    """Seconds and peak MiB of `mlops monitor` over N records; and the store's size in MiB."""
    from core.image_stats import build_profile, profile_to_json
    from registry import Registry
    from registry.monitoring_log import write_batch

    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
        root = Path(tmp)
        uri = f"file://{root / 'registry'}"
        registry = Registry.open(uri, "xray-classifier", cache_dir=root / "cache")
        reference = [r for batch in synthetic_records(2000, 0.0, seed=1) for r in batch]
        profile = build_profile(
            [r["input"] for r in reference],
            [r["label"] for r in reference],
            [r["confidence"] for r in reference],
            CLASSES,
        )
        src = root / "run"
        src.mkdir()
        (src / "model.keras").write_bytes(b"not loaded by the monitor")
        (src / "reference_profile.json").write_text(json.dumps({**profile_to_json(profile), "split": "test"}))
        from bench_registry import MANIFEST  # a registrable manifest: the lineage without training

        registry.register(src, {**MANIFEST, "classes": CLASSES}, actor="bench")

        start = time.time() - n * 0.001 - 60
        print(f"writing {n:,} records in batches of {BATCH} ...", flush=True)
        began = time.perf_counter()
        for batch in synthetic_records(n, start):
            write_batch(registry.store, "xray-classifier", "predictions", batch)
        size = sum(p.stat().st_size for p in (root / "registry" / "monitoring").rglob("*.parquet")) / 2**20
        print(f"  written in {time.perf_counter() - began:.1f} s ({size:.0f} MiB Parquet)", flush=True)

        env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
        env.update({"MLOPS_HOME": str(root / ".mlops"), "MLOPS_REGISTRY": uri})
        # The nightly step: a closed day's thousands of API batches become a few large objects.
        tomorrow = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400))
        began = time.perf_counter()
        compact = [sys.executable, "-m", "mlops.cli", "monitor", "compact", "--before", tomorrow]
        subprocess.run(compact, env=env, capture_output=True, text=True, check=True)
        print(f"  compacted in {time.perf_counter() - began:.1f} s", flush=True)
        command = [
            sys.executable,
            "-m",
            "mlops.cli",
            "monitor",
            "--model",
            "testing:1",
            "--window",
            "30d",
            "--json",
        ]
        began = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - began
        if done.returncode not in (0, 3):
            raise SystemExit(f"mlops monitor failed ({done.returncode}): {done.stderr[-2000:]}")
        summary = json.loads(done.stdout)
        assert summary["records"] == n, summary["records"]
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        return seconds, peak, int(size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests and 100,000 records")
    parser.add_argument(
        "--records", type=int, help="records for the monitor timing (default 1,000,000; 0: skip)"
    )
    args = parser.parse_args(argv)
    # Many short alternating rounds: a shared machine's load changes over minutes and hits both alike.
    rounds, latency_n, throughput_n = (2, 100, 400) if args.quick else (16, 100, 480)
    records = args.records if args.records is not None else (100_000 if args.quick else 1_000_000)

    rows, rate_ratio, cpu_ratio = bench_api(rounds, latency_n, throughput_n)
    seconds, peak_mib, store_mib = bench_monitor(records) if records else (0.0, 0.0, 0)

    print(
        f"\nAPI: 256x256 PNG, 2 workers x 4 threads, {CLIENTS} clients, median of {rounds} alternating rounds"
    )
    print(f"{'':10} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'CPU ms/req':>11}")
    for mode, p50, p99, rate, cpu_ms in rows:
        print(f"{mode:10} {p50:8.2f} {p99:8.2f} {rate:8.1f} {cpu_ms:11.2f}")
    print(
        f"\nthroughput with the log on / off (median of paired rounds): {rate_ratio:.3f} "
        f"= {(1 - rate_ratio) * 100:+.1f}% lost (goal <= 5%)"
    )
    print(
        f"server CPU per request with the log on / off (all rounds): {cpu_ratio:.3f} "
        f"= {(cpu_ratio - 1) * 100:+.1f}%"
    )
    print(f"p99 with the log on / off (medians): {rows[0][2] / rows[1][2]:.2f}x")
    if records:
        print(
            f"mlops monitor over {records:,} records ({store_mib} MiB in the store): {seconds:.1f} s, "
            f"peak {peak_mib:.0f} MiB"
        )
    return 0


CLIENTS = 8

if __name__ == "__main__":
    sys.exit(main())
