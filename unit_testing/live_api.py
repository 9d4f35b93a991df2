"""Start the API on a candidate version (a clone of production) on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import requests

from mlops.errors import MlopsError
from mlops.net import free_port
from mlops.settings import Settings
from unit_testing.runner import settings_env


def _tail(path: str, lines: int = 15) -> str:
    with open(path, errors="replace") as handle:
        return "".join(handle.readlines()[-lines:])


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (gunicorn and its workers), then SIGKILL if it hangs."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextlib.contextmanager
def serve_candidate(ref: str, settings: Settings) -> Iterator[str]:
    """`mlops serve --model REF` on 127.0.0.1:<free port>; yields its URL once /readyz says ready."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "mlops.cli", "serve", "--model", ref, "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1"}
    log = tempfile.NamedTemporaryFile(prefix="mlops-serve-", suffix=".log", delete=False)  # noqa: SIM115
    print(f"starting the API on {ref} at {url} (log: {log.name})", file=sys.stderr, flush=True)
    # A new session, so stopping it reaches gunicorn's workers too and nothing else.
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + settings.model_tests.api_start_timeout_s
        while True:
            if process.poll() is not None:
                raise MlopsError(
                    f"the API exited with code {process.returncode} before it was ready:\n{_tail(log.name)}"
                )
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise MlopsError(
                    f"the API was not ready within {settings.model_tests.api_start_timeout_s}s "
                    f"(model_tests.api_start_timeout_s); last log lines:\n{_tail(log.name)}"
                )
            time.sleep(0.5)
        print(f"API ready at {url}", file=sys.stderr, flush=True)
        yield url
    finally:
        _stop(process)
        log.close()
