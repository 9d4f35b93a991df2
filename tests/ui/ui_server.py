"""`mlops ui` under real gunicorn on a free loopback port, for the CLI and browser tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from core.processes import free_port


@dataclass
class UiServer:
    url: str
    process: subprocess.Popen
    log: Path


def start_ui(registry_uri: str, folder: Path, page_size: int = 50) -> UiServer:
    """Start `mlops ui` and wait until /healthz answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env.update({"MLOPS_HOME": str(folder / ".mlops"), "MLOPS_UI_PAGE_SIZE": str(page_size)})
    command = [
        sys.executable,
        "-m",
        "mlops.cli",
        "--registry",
        registry_uri,
        "--model-name",
        "xray-classifier",
    ]
    command += ["ui", "--port", str(port), "--workers", "1", "--threads", "4"]
    log = folder / "ui.log"
    cwd = folder / "ui-cwd"  # its own folder: `python -m` puts the working directory on sys.path
    cwd.mkdir(exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    server = UiServer(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlops ui exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(server.url + "/healthz", timeout=2).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.3)
    stop_ui(server)
    raise RuntimeError(f"mlops ui not ready in time:\n{log.read_text()[-3000:]}")


def stop_ui(server: UiServer) -> None:
    """SIGTERM gunicorn (mlops ui exec'd it), then SIGKILL if it lingers."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)
