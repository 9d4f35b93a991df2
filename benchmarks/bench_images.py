"""Benchmark: the images, built and started, against the same API started outside a container.

In one run: each image's size; its build time after a code-only change (the pinned-dependency layer
reused) and, unless --quick, from scratch (--no-cache); and the cold start of the serving image
(container start -> /readyz 200) against `mlops serve` on this machine, same model, same registry.

    .venv/bin/python benchmarks/bench_images.py [--quick] [--runs N]

Needs a Docker engine (`scripts/docker-engine.sh start`); builds with scripts/build-images.sh's base.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from core.processes import free_port

ROOT = Path(__file__).resolve().parents[1]
MLOPS = str(Path(sys.executable).parent / "mlops")
IMAGES = {"mlops-xray-train:latest": "training/Dockerfile", "mlops-xray-api:latest": "model_api/Dockerfile"}


def sh(*cmd: str, env: dict[str, str] | None = None, timeout: float = 1800) -> str:
    """Run a command; exit with its output if it fails."""
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def base_image() -> str:
    """The base image build-images.sh uses on this machine (official if reachable, else the stand-in)."""
    if os.environ.get("MLOPS_BASE_IMAGE"):
        return os.environ["MLOPS_BASE_IMAGE"]
    pulled = subprocess.run(["docker", "pull", "-q", "python:3.11-slim-bookworm"], capture_output=True)
    return (
        "python:3.11-slim-bookworm" if pulled.returncode == 0 else sh("scripts/local-base-image.sh").strip()
    )


def build_seconds(tag: str, dockerfile: str, base: str, *extra: str, context: Path = ROOT) -> float:
    """Wall seconds of one legacy-builder build (context: the repository root or a copy of it)."""
    start = time.perf_counter()
    sh(
        "docker", "build", "-q", "--build-arg", f"BASE_IMAGE={base}", "-f", str(context / dockerfile),
        "-t", tag, *extra, str(context),
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )  # fmt: skip
    return time.perf_counter() - start


def changed_copy(work: Path) -> Path:
    """A copy of the repository with one line of code changed (a new comment in every package)."""
    copy = work / "context"
    shutil.copytree(
        ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", "node_modules", ".mlops", "*.pyc")
    )
    for init in copy.glob("*/__init__.py"):
        init.write_text(init.read_text() + f"# changed {time.time_ns()}\n")
    return copy


def wait_ready(url: str, budget_s: float = 300) -> float:
    """Seconds until URL answers 200."""
    start = time.perf_counter()
    while time.perf_counter() - start < budget_s:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter() - start
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{url} not ready within {budget_s} s")


def trained_registry(work: Path) -> Path:
    """A registry folder with testing:1 trained on the demo data (on this machine)."""
    env = {**os.environ, "MLOPS_HOME": str(work / "home")}
    sh(MLOPS, "demo-data", "--out", str(work / "data"), env=env)
    registry = work / "registry"
    sh(MLOPS, "--registry", f"file://{registry}", "train", "--data", str(work / "data"), env=env)
    for path in [registry, *registry.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o055)  # readable by the image's uid 10001
    return registry


def container_start(registry: Path) -> float:
    """Seconds from `docker run` to /readyz 200 for the serving image (restricted, as in k8s)."""
    port = free_port()
    name = f"bench-api-{port}"
    start = time.perf_counter()
    sh(
        "docker", "run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp", "--cap-drop=ALL",
        "--security-opt", "no-new-privileges", "-p", f"127.0.0.1:{port}:8080",
        "-v", f"{registry}:/registry:ro",
        "-e", "MLOPS_REGISTRY=file:///registry", "-e", "MLOPS_MODEL_REF=testing:1", "mlops-xray-api:latest",
    )  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz")
        return time.perf_counter() - start
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def host_start(registry: Path, work: Path) -> float:
    """Seconds from `mlops serve` to /readyz 200 on this machine, same model, same settings."""
    port = free_port()
    env = {**os.environ, "MLOPS_HOME": str(work / f"serve-{port}"), "MLOPS_REGISTRY": f"file://{registry}"}
    start = time.perf_counter()
    server = subprocess.Popen(
        [MLOPS, "serve", "--model", "testing:1", "--port", str(port), "--grpc-port", "0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz")
        return time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(60)


def main() -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the from-scratch (--no-cache) builds")
    parser.add_argument("--runs", type=int, default=3, help="cold starts of each kind (median reported)")
    args = parser.parse_args()
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode:
        sys.exit("no Docker engine answers: run scripts/docker-engine.sh start")
    base = base_image()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp:
        changed = changed_copy(Path(tmp))
        for tag, dockerfile in IMAGES.items():
            scratch = None if args.quick else build_seconds(tag, dockerfile, base, "--no-cache")
            build_seconds(tag, dockerfile, base)  # the cache holds this checkout's layers
            # A code-only change: the pinned-dependency layer is reused, the packages are copied again.
            code_change = build_seconds(tag, dockerfile, base, context=changed)
            build_seconds(tag, dockerfile, base)  # leave the image built from this checkout
            size = int(sh("docker", "image", "inspect", "--format", "{{.Size}}", tag)) / 1e6
            rows.append((tag, size, code_change, scratch))

    print(f"\nbase image: {base}\n")
    print("| image | size MB | rebuild after a code change s | build from scratch s |")
    print("|---|---|---|---|")
    for tag, size, code_change, scratch in rows:
        print(f"| {tag} | {size:.0f} | {code_change:.1f} | {'-' if scratch is None else f'{scratch:.1f}'} |")

    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp:
        work = Path(tmp)
        registry = trained_registry(work)
        host = [host_start(registry, work) for _ in range(args.runs)]
        box = [container_start(registry) for _ in range(args.runs)]
    h, c = statistics.median(host), statistics.median(box)
    print(f"\ncold start to /readyz 200, median of {args.runs} (same model, 2 workers):\n")
    print("| how | median s | min s | max s | vs host |")
    print("|---|---|---|---|---|")
    print(f"| mlops serve on this machine (baseline) | {h:.2f} | {min(host):.2f} | {max(host):.2f} | 1.00x |")
    spread = f"{min(box):.2f} | {max(box):.2f}"
    print(f"| serving image (docker run, restricted) | {c:.2f} | {spread} | {c / h:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
