"""Deploy test fixtures: a free loopback port, the `mlops serve` stand-in, and cleanup of every process."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy import local, sockets
from mlops.settings import Settings, load_settings

STANDIN = Path(__file__).with_name("standin_serve.py")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def local_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings that serve the stand-in on a free port; stops whatever the test started."""
    monkeypatch.setenv("MLOPS_DEPLOY_SERVE_COMMAND", f"{sys.executable} {STANDIN} serve")
    monkeypatch.setenv("MLOPS_API_PORT", str(free_port()))
    monkeypatch.setenv("MLOPS_API_WORKERS", "2")
    monkeypatch.setenv("MLOPS_DEPLOY_READY_TIMEOUT_S", "60")
    monkeypatch.setenv("STANDIN_LOAD_S", "1.0")
    settings = load_settings()
    started: list[int] = []
    yield settings
    state = local.load_state(settings)
    local.stop_local(settings)
    # Belt and braces: every server a test started (logs name them) must be gone.
    for entry in (state.get("current"), state.get("previous")):
        if entry:
            started.append(entry["pid"])
    for pid in started:
        if sockets.alive(pid):
            sockets.terminate(pid, 5)
