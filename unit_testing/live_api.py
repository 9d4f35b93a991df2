"""Start the API on a candidate version (a clone of production) on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from core.errors import MlopsError
from core.processes import free_port, terminate, wait_ready
from core.settings import Settings, settings_env


def _tail(path: str, lines: int = 15) -> str:
    with open(path, errors="replace") as handle:
        return "".join(handle.readlines()[-lines:])


@dataclass(frozen=True)
class LiveApi:
    """A started API: where it listens, and the traffic token it honours (see core/traffic.py)."""

    url: str
    traffic_token: str = field(repr=False)


@contextlib.contextmanager
def serve_candidate(ref: str, settings: Settings) -> Iterator[LiveApi]:
    """The serving entry point (`mlops-serve --model REF`) on 127.0.0.1:<free port>; yields it once /readyz
    says ready."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "model_api", "--model", ref, "--host", "127.0.0.1"]
    # No gRPC: a candidate must never join (SO_REUSEPORT) a production server's gRPC port on this host.
    command += ["--port", str(port), "--grpc-port", "0"]
    # A server of our own gets a traffic token of its own: the suite's requests are then marked `test`
    # (kept out of production's monitoring window) with no deployment secret needed, and the token dies
    # with the server.
    token = secrets.token_urlsafe(32)
    env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1", "MLOPS_TRAFFIC_TOKEN": token}
    log = tempfile.NamedTemporaryFile(prefix="mlops-serve-", suffix=".log", delete=False)  # noqa: SIM115
    print(f"starting the API on {ref} at {url} (log: {log.name})", file=sys.stderr, flush=True)
    # A new session, so stopping it reaches gunicorn's workers too and nothing else.
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        timeout_s = settings.model_tests.api_start_timeout_s
        why = wait_ready(f"{url}/readyz", timeout_s, lambda: process.poll() is None, interval_s=0.5)
        if why is not None and process.poll() is not None:
            raise MlopsError(
                f"the API exited with code {process.returncode} before it was ready:\n{_tail(log.name)}"
            )
        if why is not None:
            raise MlopsError(
                f"the API was not ready within {timeout_s}s (model_tests.api_start_timeout_s): {why}; "
                f"last log lines:\n{_tail(log.name)}"
            )
        print(f"API ready at {url}", file=sys.stderr, flush=True)
        yield LiveApi(url, token)
    finally:
        terminate(process, 30, group=True)
        log.close()
