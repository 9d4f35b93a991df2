"""Benchmark: the local zero-downtime switch against a plain stop-and-start, under the same load.

Both run in this process, on the same machine, with the same server command and load loop; the
table reports failed requests, latency and how long each change took, and the ratios between them.

    .venv/bin/python benchmarks/bench_deploy.py [--quick] [--serve-command "CMD serve"]

Default server: the `mlops serve` stand-in from tests/deploy (real gunicorn, no TensorFlow), so the
numbers measure the switch itself; pass --serve-command ".venv/bin/mlops serve" with a registry
holding production versions 1 and 2 to measure the real API.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from core.processes import free_port

ROOT = Path(__file__).resolve().parents[1]
STANDIN = ROOT / "tests" / "deploy" / "standin_serve.py"


class Load:
    """Closed-loop clients on the stable port; records each request's latency or failure."""

    def __init__(self, url: str, clients: int) -> None:
        from deploy.smoke import probe_image

        self.url, self.image = url, probe_image()
        self.latencies: list[float] = []
        self.done_at: list[float] = []  # completion times of successful requests
        self.failures = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]

    def run(self) -> None:
        while not self.stop.is_set():
            start = time.perf_counter()
            try:
                ok = (
                    requests.post(
                        f"{self.url}/predict",
                        files={"file": ("x.png", self.image, "image/png")},
                        headers={"Connection": "close"},
                        timeout=30,
                    ).status_code
                    == 200
                )
            except requests.RequestException:
                ok = False
            with self.lock:
                if ok:
                    self.latencies.append(time.perf_counter() - start)
                    self.done_at.append(time.perf_counter())
                else:
                    self.failures += 1
                    time.sleep(0.01)  # a refused connection returns at once: don't spin

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def measure(name: str, change, url: str, clients: int, settle_s: float) -> dict:
    """Run `change()` inside a load loop; what the clients saw."""
    with Load(url, clients) as load:
        time.sleep(settle_s)
        start = time.perf_counter()
        change()
        took = time.perf_counter() - start
        time.sleep(settle_s)
    lat = sorted(load.latencies)
    done = sorted(load.done_at)
    gap = max((b - a for a, b in itertools.pairwise(done)), default=float("nan"))
    return {
        "name": name,
        "requests": len(lat) + load.failures,
        "failed": load.failures,
        "p50_ms": 1000 * statistics.median(lat) if lat else float("nan"),
        "p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))] if lat else float("nan"),
        "change_s": took,
        "max_gap_s": gap,  # longest time no request succeeded: the outage a client saw
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer clients, shorter settle time")
    parser.add_argument("--serve-command", help="server command (default: the tests' stand-in)")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    os.environ.update(
        MLOPS_HOME=str(home),
        MLOPS_API_PORT=str(free_port()),
        MLOPS_API_WORKERS="2",
        MLOPS_DEPLOY_SERVE_COMMAND=args.serve_command or f"{sys.executable} {STANDIN} serve",
        STANDIN_LOAD_S="1.0",
    )
    from core.settings import load_settings
    from deploy import local
    from deploy.model import Model

    settings = load_settings()
    clients, settle = (2, 0.5) if args.quick else (4, 1.5)
    v1, v2 = (Model(f"production:{n}", "xray-classifier", n) for n in (1, 2))
    first = local.deploy_local(settings, v1)
    if not first.ok:
        print(f"could not start the API: {first.detail}", file=sys.stderr)
        return 1
    rows = []
    try:

        def switch() -> None:
            assert local.deploy_local(settings, v2).ok

        def restart() -> None:
            local.stop_local(settings)
            assert local.deploy_local(settings, v1).ok

        rows.append(measure("baseline: stop + start", restart, first.url, clients, settle))
        rows.append(measure("zero-downtime switch", switch, first.url, clients, settle))
    finally:
        local.stop_local(settings)

    base = rows[0]
    print(f"\nlocal deploy under load ({clients} clients, stand-in={not args.serve_command})")
    print(
        f"{'change':<24}{'requests':>9}{'failed':>8}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'change s':>10}{'max gap s':>11}"
    )
    for row in rows:
        print(
            f"{row['name']:<24}{row['requests']:>9}{row['failed']:>8}{row['p50_ms']:>9.1f}"
            f"{row['p99_ms']:>9.1f}{row['change_s']:>10.2f}{row['max_gap_s']:>11.2f}"
        )
    ours = rows[1]
    print(
        f"\nratios switch/baseline: failed {ours['failed']}/{base['failed']}, "
        f"p99 {ours['p99_ms'] / base['p99_ms']:.2f}x, "
        f"change time {ours['change_s'] / base['change_s']:.2f}x, "
        f"max gap {ours['max_gap_s'] / base['max_gap_s']:.2f}x"
    )
    return 0 if ours["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
