"""core.processes: the one "wait until ready" and the one "terminate then kill"."""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from core.processes import alive, free_port, terminate, wait_ready


@pytest.fixture
def http_status() -> Iterator[tuple[str, list[int]]]:
    """A loopback HTTP server answering GET with the status at the head of the list (kept when last)."""
    statuses = [200]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = statuses.pop(0) if len(statuses) > 1 else statuses[0]
            self.send_response(code)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/readyz", statuses
    finally:
        server.shutdown()
        server.server_close()


def test_wait_ready_returns_none_once_the_url_answers_200(http_status):
    url, statuses = http_status
    statuses[:] = [503, 503, 200]
    assert wait_ready(url, 10, interval_s=0.01) is None
    assert statuses == [200]  # it kept asking through the two 503s


def test_wait_ready_says_why_it_gave_up(http_status):
    url, statuses = http_status
    statuses[:] = [503]
    why = wait_ready(url, 0.3, interval_s=0.05)
    assert why == f"not ready after 0 s: {url} answered 503"
    closed = f"http://127.0.0.1:{free_port()}/readyz"
    assert wait_ready(closed, 0.2, interval_s=0.05).endswith("unreachable (URLError)")
    assert wait_ready(url, 10, still_running=lambda: False) == "the server exited while starting"


# A parent that ignores SIGTERM, with a child in its process group; prints the child's pid.
# A parent that ignores SIGTERM (from its first line, so no SIGTERM can land before) with a child in
# its process group that inherits the same; the parent prints the child's pid.
STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


def test_terminate_stops_a_willing_process_with_sigterm():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert terminate(process, 10) is True
    assert process.returncode == -15


def test_terminate_kills_a_stubborn_process_and_with_group_its_children():
    command = [sys.executable, "-c", STUBBORN]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        child = int(process.stdout.readline())
        started = time.monotonic()
        assert terminate(process, 0.5, group=True) is False  # it ignored SIGTERM: SIGKILL
        assert time.monotonic() - started < 10
        assert process.returncode == -9
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child)
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever failed, leave nothing running
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        process.stdout.close()


def test_terminate_takes_a_pid_that_is_not_our_child():
    """A daemon (its parent exited, as deploy's servers do) is watched through /proc, not waitpid."""
    done = subprocess.run(["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True)
    pid = int(done.stdout)
    assert alive(pid)
    assert terminate(pid, 10) is True
    assert not alive(pid)
    assert terminate(pid, 1) is True  # already gone: nothing to do


def test_alive_is_false_for_a_pid_that_never_ran():
    assert alive(os.getpid())
    assert not alive(2**22 + 12345)
