"""`mlops serve` (real gunicorn) on a free loopback port, for any test area: start, wait ready, stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from mlops.net import free_port


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return requests.post(self.url + path, timeout=30, **kwargs)


def start_serve(
    model: str, folder: Path, workers: int = 2, threads: int = 4, env: dict[str, str] | None = None
) -> Server:
    """`mlops serve --model MODEL` in FOLDER with a clean MLOPS_* environment plus ENV; waits for /readyz."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "PROMETHEUS_"))}
    environ.update({"MLOPS_HOME": str(folder / ".mlops"), "MLOPS_API_TF_THREADS": "1", **(env or {})})
    log = folder / f"server-{port}.log"
    command = [sys.executable, "-m", "mlops.cli", "serve", "--model", model]
    command += ["--port", str(port), "--workers", str(workers), "--threads", str(threads)]
    with log.open("wb") as out:
        # A session of its own: a test can kill gunicorn's whole process group (a crash) at once.
        process = subprocess.Popen(
            command, env=environ, cwd=folder, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_ready(server, deadline=time.monotonic() + 180)
    except BaseException:
        stop_server(server)  # never leave a server behind, whatever went wrong
        raise
    return server


def wait_ready(server: Server, deadline: float) -> None:
    """Poll /readyz until it answers 200, the server exits, or the deadline passes."""
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"server exited with {server.process.returncode}:\n{server.log.read_text()[-3000:]}"
            )
        try:
            if requests.get(server.url + "/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass  # the socket is bound before the workers finish loading the model
        time.sleep(0.5)
    raise RuntimeError(f"server not ready in time:\n{server.log.read_text()[-3000:]}")


def stop_server(server: Server) -> None:
    """SIGTERM `mlops serve` (gunicorn: a graceful stop), then SIGKILL if it lingers."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)


def kill_server(server: Server) -> None:
    """SIGKILL gunicorn's master and workers at once: a crash, no graceful anything."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=30)
