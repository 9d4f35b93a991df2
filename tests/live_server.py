"""The serving entry point (`mlops-serve`, real gunicorn) on a free loopback port: start, wait ready, stop."""

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

from core.processes import free_port, terminate
from core.processes import wait_ready as wait_until_ready


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
    """`mlops-serve --model MODEL` in FOLDER with a clean MLOPS_* environment plus ENV; waits for /readyz."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "PROMETHEUS_"))}
    # gRPC off unless asked for (env MLOPS_API_GRPC_PORT): test servers must not share port 8081.
    environ.update(
        {
            "MLOPS_HOME": str(folder / ".mlops"),
            "MLOPS_API_TF_THREADS": "1",
            "MLOPS_API_GRPC_PORT": "0",
            **(env or {}),
        }
    )
    log = folder / f"server-{port}.log"
    command = [sys.executable, "-m", "model_api", "--model", model]
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
    """Wait until /readyz answers 200; raise with the server's log when it exits or the deadline passes."""
    why = wait_until_ready(
        server.url + "/readyz", deadline - time.monotonic(), lambda: server.process.poll() is None, 0.5
    )
    if why is not None:
        raise RuntimeError(
            f"server {why} (exit code {server.process.poll()}):\n{server.log.read_text()[-3000:]}"
        )


def stop_server(server: Server) -> None:
    """SIGTERM `mlops-serve` (gunicorn: a graceful stop), then SIGKILL if it lingers."""
    terminate(server.process, 30)


def kill_server(server: Server) -> None:
    """SIGKILL gunicorn's master and workers at once: a crash, no graceful anything."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=30)
