"""Monitoring at scale: `mlops monitor` on 1M/10M rows, the log's cost to the API, the label-free estimate.

    .venv/bin/python benchmarks/bench_monitoring.py [--quick] [--sizes 1000000,10000000] [--parts ...]

1. Two API servers under gunicorn (model_api/gunicorn_conf.py, the same small CNN as bench_api.py, 2
   workers x 4 threads each), one with monitoring on (input statistics, live histograms, the prediction
   log written to a local-folder store every second) and one with it off (`monitor.log_predictions =
   false`). Both run at once and are measured in alternating rounds, so a busy shared machine slows both
   alike (16 short rounds each). Per round: p50/p99 of sequential requests over keep-alive, then
   throughput with 8 concurrent clients, and the servers' CPU time per request (from /proc: less
   sensitive to a busy machine than wall-clock throughput). Goal: <= 5% throughput lost with the log on.
2. `mlops monitor` (a real subprocess: the CLI, DuckDB's window queries, PSI and the two-sample tests, the
   HTML report) over N synthetic records in a local-folder store. The Parquet batches are written directly
   with pyarrow (the API's schema, not through the API: fast), compacted by `mlops monitor compact`, and
   then the monitor run alone is timed; its peak RSS is its own (a wrapper process that runs only it reads
   RUSAGE_CHILDREN). Goal: 10,000,000 records in <= 15 s and <= 1 GiB. Baseline in the same run: the code
   before issue 25 (git commit BASELINE: gzip'd JSON lines read by a Python loop) over 1,000,000 records.
3. The label-free estimate against the real accuracy: the demo model trained and served under gunicorn
   (tests/monitoring/served_testlib.py), windows of held-out images clean, darkened, noisy, 20 % rotated,
   and a collapsed stand-in model; every request labelled through /feedback, so the table shows the
   estimate, its interval, the real live accuracy, and whether the estimate alerted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
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
ROOT = HERE.parent
BASELINE = "103f6d9"  # the last commit before issue 25's Parquet log (JSON lines, a Python loop)
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


def _stamp(t: float) -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def write_parquet_records(root: Path, n: int, start: float, seed: int = 0, chunk: int = 500_000) -> None:
    """N prediction records in the API's Parquet schema, one record per millisecond from START, written
    straight with pyarrow into the prediction log's date partitions (objects of up to CHUNK rows)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from registry.monitoring_log import HIST_COLUMNS, SCHEMAS, kind_prefix

    schema = SCHEMAS["predictions"]
    rng = np.random.default_rng(seed)
    prefix = root / kind_prefix("xray-classifier", "predictions")
    for first in range(0, n, chunk):
        count = min(chunk, n - first)
        t = start + (first + np.arange(count)) * 0.001
        days = np.array([time.strftime("%Y-%m-%d", time.gmtime(x)) for x in (t[0], t[-1])])
        cut = count if days[0] == days[1] else int(np.searchsorted(t, _midnight(t[-1])))
        confidences = np.clip(rng.normal(0.85, 0.06, count), 0.34, 1.0)
        hists = rng.dirichlet(np.full(len(HIST_COLUMNS), 5.0), count)
        labels = pa.array(np.asarray(CLASSES)[rng.choice(3, count, p=[0.3, 0.4, 0.3])])
        offsets = pa.array(np.arange(0, 3 * count + 1, 3, dtype=np.int32))
        probabilities = pa.MapArray.from_arrays(
            offsets, pa.array(np.tile(CLASSES, count)), pa.array(np.full(3 * count, 1 / 3))
        )
        columns = {
            "id": pc.cast(pa.array(np.arange(first, first + count) + (seed << 40)), pa.string()),
            "t": pa.array(t),
            "at": pa.nulls(count, pa.string()),
            "model": pa.array(["xray-classifier"] * count),
            "version": pa.array(["1"] * count),
            "endpoint": pa.array(["predict"] * count),
            "traffic_class": pa.array(["production"] * count),
            "label": labels,
            "confidence": pa.array(confidences),
            "probabilities": probabilities,
            "input_format": pa.array(["PNG"] * count),
            "input_width": pa.array(np.full(count, 256)),
            "input_height": pa.array(np.full(count, 256)),
            "input_mean": pa.array(rng.normal(0.45, 0.05, count)),
            "input_std": pa.array(rng.normal(0.2, 0.02, count)),
            **{name: pa.array(hists[:, i]) for i, name in enumerate(HIST_COLUMNS)},
            "latency_ms": pa.array(np.full(count, 4.2)),
            "image": pa.nulls(count, pa.string()),
        }
        table = pa.Table.from_pydict(columns, schema=schema)
        for part in (table.slice(0, cut), table.slice(cut)):
            if part.num_rows == 0:
                continue
            times = part.column("t")
            lo, hi = pc.min(times).as_py(), pc.max(times).as_py()
            folder = prefix / f"date={time.strftime('%Y-%m-%d', time.gmtime(lo))}"
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(
                part, folder / f"{_stamp(lo)}_{_stamp(hi)}_bench-{seed}-{first}.parquet", compression="zstd"
            )


def _midnight(t: float) -> float:
    """The start of T's UTC day."""
    return t - t % 86400


def register_reference(root: Path) -> str:
    """A local registry with testing:1 and a reference profile of 2,000 records like the synthetic ones."""
    from core.image_stats import build_profile, profile_to_json
    from registry import Registry

    uri = f"file://{root / 'registry'}"
    registry = Registry.open(uri, "xray-classifier", cache_dir=root / "cache")
    rng = np.random.default_rng(1)
    n = 2000
    inputs = [
        {"format": "PNG", "width": 256, "height": 256, "mean": float(m), "std": float(s), "hist": h.tolist()}
        for m, s, h in zip(
            rng.normal(0.45, 0.05, n),
            rng.normal(0.2, 0.02, n),
            rng.dirichlet(np.full(8, 5.0), n),
            strict=True,
        )
    ]
    labels = [CLASSES[i] for i in rng.choice(3, n, p=[0.3, 0.4, 0.3])]
    confidences = np.clip(rng.normal(0.85, 0.06, n), 0.34, 1.0).tolist()
    profile = build_profile(inputs, labels, confidences, CLASSES)
    src = root / "run"
    src.mkdir()
    (src / "model.keras").write_bytes(b"not loaded by the monitor")
    (src / "reference_profile.json").write_text(json.dumps({**profile_to_json(profile), "split": "test"}))
    from bench_registry import MANIFEST  # a registrable manifest: the lineage without training

    registry.register(src, {**MANIFEST, "classes": CLASSES}, actor="bench")
    return uri


# Runs one command as this wrapper's only child: its RUSAGE_CHILDREN peak is that command's own.
_MEASURE = """
import json, resource, subprocess, sys, time
began = time.perf_counter()
with open(sys.argv[1], "wb") as out:
    code = subprocess.run(sys.argv[2:], stdout=out, stderr=subprocess.PIPE).returncode
seconds = time.perf_counter() - began
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"code": code, "seconds": seconds, "peak_mib": peak}))
"""


def measured(command: list[str], env: dict[str, str], stdout: Path, cwd: Path | None = None) -> dict:
    """Seconds and peak MiB of COMMAND alone (run by a wrapper with no other child)."""
    wrapper = [sys.executable, "-c", _MEASURE, str(stdout), *command]
    done = subprocess.run(wrapper, env=env, cwd=cwd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def bench_monitor(n: int) -> dict:
    """`mlops monitor` over N Parquet records after compaction: seconds, peak MiB, store MiB."""
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
        root = Path(tmp)
        uri = register_reference(root)
        start = time.time() - n * 0.001 - 60
        print(f"writing {n:,} records as Parquet (pyarrow, straight into the log) ...", flush=True)
        began = time.perf_counter()
        write_parquet_records(root / "registry", n, start)
        print(f"  written in {time.perf_counter() - began:.1f} s", flush=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
        env.update({"MLOPS_HOME": str(root / ".mlops"), "MLOPS_REGISTRY": uri})
        tomorrow = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400))
        began = time.perf_counter()
        compact = [sys.executable, "-m", "mlops.cli", "monitor", "compact", "--before", tomorrow]
        subprocess.run(compact, env=env, capture_output=True, text=True, check=True)
        compact_s = time.perf_counter() - began
        size = sum(p.stat().st_size for p in (root / "registry" / "monitoring").rglob("*.parquet")) / 2**20
        print(f"  compacted in {compact_s:.1f} s ({size:.0f} MiB Parquet)", flush=True)
        command = [sys.executable, "-m", "mlops.cli", "monitor", "--model", "testing:1", "--window", "30d"]
        command += ["--json", "--no-record"]
        result = measured(command, env, root / "summary.json")
        if result["code"] not in (0, 3):
            raise SystemExit(f"mlops monitor failed ({result['code']})")
        summary = json.loads((root / "summary.json").read_text())
        assert summary["records"] == n, summary["records"]
        return {**result, "store_mib": size, "compact_s": compact_s}


def bench_baseline(n: int) -> dict | None:
    """The code before issue 25 (commit BASELINE) over N records: its own bench, in its own tree."""
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", BASELINE], capture_output=True, check=False
        )
        if archive.returncode != 0:
            print(f"baseline skipped: git archive {BASELINE} failed (not a git checkout?)", flush=True)
            return None
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        old = Path(tmp)
        code = (
            "import json, sys; from bench_monitoring import bench_monitor; "
            f"s, peak, size = bench_monitor({n}); "
            "print(json.dumps({'seconds': s, 'peak_mib': peak, 'store_mib': size}))"
        )
        env = {**os.environ, "PYTHONPATH": f"{old}:{old / 'benchmarks'}"}
        print(f"baseline ({BASELINE}, JSON lines): writing and reading {n:,} records ...", flush=True)
        done = subprocess.run([sys.executable, "-c", code], env=env, cwd=old, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"baseline failed: {done.stderr[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def bench_estimate() -> list[dict]:
    """The label-free estimate against the real live accuracy, shifted windows of the served demo model."""
    # The served demo model's helpers; the project root first, so tests/registry etc. shadow nothing.
    sys.path[:0] = [str(ROOT)]
    sys.path += [str(ROOT / "tests"), str(ROOT / "tests" / "monitoring")]
    from live_server import stop_server
    from served_testlib import deploy_demo, give_feedback, monitor, sample, send, standin_collapsed
    from shifts import darkened, rotated, shifted

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-estimate-") as tmp:
        print("training and serving the demo model ...", flush=True)
        deployment = deploy_demo(Path(tmp))
        try:
            pool = deployment.test_split + deployment.unseen

            def window(name: str, server, chosen, images, model: str = "testing:1") -> None:
                since, until, answers = send(server, images)
                give_feedback(server, answers, [label for _, label in chosen])
                code, summary = monitor(deployment, since, until, "--no-record", model=model)
                estimate, accuracy = summary["estimate"], summary["accuracy"]
                rows.append({
                    "window": name, "n": len(images), "estimate": estimate["accuracy"],
                    "interval": estimate["interval"], "real": accuracy["accuracy"],
                    "alerted": estimate.get("dropped", False), "exit": code,
                })  # fmt: skip
                print(f"  {name}: {rows[-1]}", flush=True)

            n = 250
            chosen = sample(pool, n, seed=1)
            paths = [p for p, _ in chosen]
            window("clean", deployment.server, chosen, [p.read_bytes() for p in paths])
            chosen = sample(pool, n, seed=2)
            window("dark (x0.5)", deployment.server, chosen, darkened([p for p, _ in chosen]))
            chosen = sample(pool, n, seed=3)
            window("noisy (sigma 25)", deployment.server, chosen, shifted([p for p, _ in chosen], "noise"))
            chosen = sample(pool, n, seed=4)
            images = [rotated([p])[0] if i % 5 == 0 else p.read_bytes() for i, (p, _) in enumerate(chosen)]
            window("rotated 20 %", deployment.server, chosen, images)
            chosen = sample(pool, n, seed=5)
            ref = standin_collapsed(deployment, Path(tmp))
            server = deployment.serve(ref)
            try:
                window("collapsed (always normal)", server, chosen, [p.read_bytes() for p, _ in chosen], ref)
            finally:
                stop_server(server)
        finally:
            stop_server(deployment.server)
    return rows


def load() -> str:
    """The machine's load, for the record next to the numbers."""
    one, five, _ = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {one:.1f} (1 min) / {five:.1f} (5 min)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests, 100,000 records, no 10M")
    parser.add_argument("--sizes", help="records for the monitor timing, comma-separated (default 1M,10M)")
    parser.add_argument(
        "--parts", default="monitor,api,estimate", help="which parts to run (monitor, api, estimate)"
    )
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    if parts - {"monitor", "api", "estimate"}:
        parser.error(f"--parts: unknown {', '.join(sorted(parts - {'monitor', 'api', 'estimate'}))}")
    # Many short alternating rounds: a shared machine's load changes over minutes and hits both alike.
    rounds, latency_n, throughput_n = (2, 100, 400) if args.quick else (16, 100, 480)
    default = "100000" if args.quick else "1000000,10000000"
    sizes = [int(x) for x in (args.sizes or default).split(",") if x]
    baseline_n = 100_000 if args.quick else 1_000_000
    print(f"machine: {load()}", flush=True)

    monitored = {n: bench_monitor(n) for n in sizes} if "monitor" in parts else {}
    baseline = bench_baseline(baseline_n) if "monitor" in parts else None
    api = bench_api(rounds, latency_n, throughput_n) if "api" in parts else None
    estimates = bench_estimate() if "estimate" in parts else []

    print(f"\nmachine at the end: {load()}")
    if monitored:
        print(
            "\n`mlops monitor` over a compacted Parquet log (the monitor run alone; "
            "goal for 10M: <= 15 s, <= 1 GiB)"
        )
        print(f"{'records':>12} {'engine':<28} {'seconds':>8} {'peak MiB':>9} {'store MiB':>10}")
        for n, r in monitored.items():
            print(
                f"{n:>12,} {'Parquet + DuckDB':<28} {r['seconds']:8.1f} {r['peak_mib']:9.0f} "
                f"{r['store_mib']:10.0f}"
            )
        if baseline:
            label = f"JSON lines, Python ({BASELINE})"
            print(f"{baseline_n:>12,} {label:<28} {baseline['seconds']:8.1f} {baseline['peak_mib']:9.0f} "
                  f"{baseline['store_mib']:10.0f}")  # fmt: skip
    if api:
        rows, rate_ratio, cpu_ratio = api
        print(
            f"\nAPI: 256x256 PNG, 2 workers x 4 threads, {CLIENTS} clients, "
            f"median of {rounds} alternating rounds"
        )
        print(f"{'':10} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'CPU ms/req':>11}")
        for mode, p50, p99, rate, cpu_ms in rows:
            print(f"{mode:10} {p50:8.2f} {p99:8.2f} {rate:8.1f} {cpu_ms:11.2f}")
        print(f"throughput with the log on / off (median of paired rounds): {rate_ratio:.3f} "
              f"= {(1 - rate_ratio) * 100:+.1f}% lost (goal <= 5%)")  # fmt: skip
        print(f"server CPU per request with the log on / off (all rounds): {cpu_ratio:.3f} "
              f"= {(cpu_ratio - 1) * 100:+.1f}%")  # fmt: skip
    if estimates:
        print(
            "\nlabel-free estimate (CBPE) against the real live accuracy, demo model, 250 requests per window"
        )
        print(
            f"{'window':<28} {'estimate':>8} {'interval':>15} {'real':>6} "
            f"{'estimate alerted':>17} {'exit':>5}"
        )
        for r in estimates:
            low, high = r["interval"]
            print(f"{r['window']:<28} {r['estimate']:8.3f}  [{low:.3f}, {high:.3f}] {r['real']:6.3f} "
                  f"{'yes' if r['alerted'] else 'no':>17} {r['exit']:>5}")  # fmt: skip
    return 0


CLIENTS = 8

if __name__ == "__main__":
    sys.exit(main())
