"""Process and readiness helpers: free port, wait until ready, terminate then kill (one copy each)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from core.errors import UsageError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]  # (host, port) for AF_INET; typeshed says Any
        return port


def alive(pid: int) -> bool:
    """Whether pid runs (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child: ask /proc
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in {"Z", "X"}


def wait_ready(
    url: str,
    timeout_s: float,
    still_running: Callable[[], bool] = lambda: True,
    interval_s: float = 0.2,
) -> str | None:
    """Poll GET url until it answers 200: None when it did, else why not (timeout or the server died)."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while True:
        if not still_running():
            return "the server exited while starting"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return None
                last = f"{url} answered {response.status}"
        except urllib.error.HTTPError as exc:  # a 4xx/5xx answer: up, but not ready yet
            last = f"{url} answered {exc.code}"
        except (OSError, ValueError) as exc:  # refused, reset, timed out, half-started server
            last = f"{url} unreachable ({type(exc).__name__})"
        if time.monotonic() >= deadline:
            return f"not ready after {timeout_s:.0f} s: {last}"
        time.sleep(interval_s)


def terminate(target: subprocess.Popen[Any] | int, timeout_s: float, group: bool = False) -> bool:
    """SIGTERM, then SIGKILL after timeout_s; True if it stopped on SIGTERM.

    target is a child process (Popen) or any pid. With group=True the SIGKILL reaches its whole
    process group (the target must lead one, e.g. started with start_new_session=True), so
    gunicorn workers of a stuck master die with it. SIGTERM goes to the target alone: a server
    such as gunicorn stops its own workers gracefully.
    """
    pid = target.pid if isinstance(target, subprocess.Popen) else target
    if isinstance(target, subprocess.Popen) and target.poll() is not None:
        return True
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    if _gone(target, timeout_s):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL) if group else os.kill(pid, signal.SIGKILL)
    _gone(target, 10)  # reap it, so no zombie outlives the caller
    return False


def _gone(target: subprocess.Popen[Any] | int, timeout_s: float) -> bool:
    """Wait up to timeout_s for the target to exit; whether it did."""
    if isinstance(target, subprocess.Popen):
        try:
            target.wait(timeout=timeout_s)
            return True
        except subprocess.TimeoutExpired:
            return False
    deadline = time.monotonic() + timeout_s
    while alive(target):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def check_server_options(args: Any) -> None:
    """--workers and --threads, when given, must be at least 1 and --port at least 0 (UsageError)."""
    for name in ("workers", "threads", "port"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "port" else 1):
            raise UsageError(f"--{name} must be positive, got {value}")


def exec_server(command: list[str], env: dict[str, str]) -> NoReturn:
    """Become the server (exec, not a child): it keeps this pid, gets signals directly, is never
    orphaned, and inherits any listening socket handed over (LISTEN_FDS)."""
    sys.stdout.flush()
    os.execvpe(command[0], command, env)
