"""Helpers for the API tests: test images and a real gunicorn server on loopback."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import requests
from PIL import Image

from core.processes import free_port, terminate
from core.processes import wait_ready as wait_until_ready

CLASSES = ["COVID", "Normal", "Viral Pneumonia"]
MODEL_NAME = "xray-classifier"


def image_bytes(size: tuple[int, int] = (80, 60), mode: str = "L", fmt: str = "PNG", seed: int = 0) -> bytes:
    """A random image encoded as FMT."""
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return requests.post(self.url + path, timeout=30, **kwargs)


def start_server(model_dir: Path, folder: Path, workers: int = 2, threads: int = 4) -> Server:
    """`mlops serve` (real gunicorn) on a free loopback port; waits until /readyz answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "PROMETHEUS_"))}
    env.update({"MLOPS_HOME": str(folder / ".mlops"), "MLOPS_API_TF_THREADS": "1"})
    log = folder / "server.log"
    command = [sys.executable, "-m", "mlops.cli", "serve", "--model", str(model_dir / "model.keras")]
    command += ["--port", str(port), "--workers", str(workers), "--threads", str(threads)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, cwd=folder, stdout=out, stderr=subprocess.STDOUT)
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
    """SIGTERM `mlops serve` (gunicorn, exec'd), then SIGKILL if it lingers."""
    terminate(server.process, 30)
