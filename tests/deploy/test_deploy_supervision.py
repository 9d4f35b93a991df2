"""When the local API's gunicorn master dies on its own, nobody waits on a dead port: restart or close.

Real gunicorn (the stand-in app), real signals, a load loop that times every request. Printed with
`[numbers]`: requests, failures, the longest request and how long the port was not served.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field

import pytest
import requests
from polling import seconds_until, wait_for

from core import processes
from deploy import local, sockets
from deploy.model import Model
from deploy.smoke import probe_image

pytestmark = pytest.mark.slow


def model(version: int) -> Model:
    return Model(f"production:{version}", "xray-classifier", version)


@dataclass
class TimedLoad:
    """Clients posting /predict in a loop (a new connection each), each outcome timed."""

    url: str
    threads: int = 3
    timeout_s: float = 30.0
    results: list[tuple[float, float, str]] = field(default_factory=list)  # (start, seconds, outcome)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)]
        self._image = probe_image()

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                response = requests.post(
                    f"{self.url}/predict", files={"file": ("x.png", self._image, "image/png")},
                    headers={"Connection": "close"}, timeout=self.timeout_s,
                )  # fmt: skip
                outcome = "ok" if response.status_code == 200 else f"HTTP {response.status_code}"
            except requests.ConnectionError:
                outcome = "refused"
                time.sleep(0.05)  # a refused client retries, not in a tight loop
            except requests.RequestException as exc:
                outcome = type(exc).__name__
            with self._lock:
                self.results.append((start, time.monotonic() - start, outcome))

    def __enter__(self) -> TimedLoad:
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=60)

    def after(self, moment: float) -> list[tuple[float, float, str]]:
        return [r for r in self.results if r[0] + r[1] >= moment]


def _served(load: TimedLoad, after: float = 0.0) -> int:
    """Requests answered ok that started after AFTER."""
    return sum(1 for start, _, outcome in load.results if outcome == "ok" and start > after)


def test_a_server_that_dies_is_restarted_and_queued_clients_are_served(local_api):
    first = local.deploy_local(local_api, model(1))
    assert first.ok, first.detail
    holder = local.load_state(local_api)["holder"]
    with TimedLoad(first.url) as load:
        wait_for("traffic served before the kill", lambda: _served(load) >= 10)
        killed_at = time.monotonic()
        os.kill(first.server.pid, signal.SIGTERM)  # the master, not through `mlops deploy`

        def restarted() -> bool:
            return (sockets.holder_status(holder["control"]) or {}).get("pid") not in (None, first.server.pid)

        restart_seen = killed_at + seconds_until("the holder to restart the server", restarted, 60)
        # Served again, and for a while: 20 answers to requests sent after the restart.
        wait_for("traffic served after the restart", lambda: _served(load, restart_seen) >= 20, 60)
    # Served again: the first answer to a request sent after the holder had restarted the server.
    outage = min(r[0] + r[1] for r in load.results if r[2] == "ok" and r[0] > restart_seen) - killed_at
    after = load.after(killed_at)
    failures = [r for r in after if r[2] != "ok"]
    longest = max(r[1] for r in after)
    print(f"\n[numbers] restart: {len(after)} requests after SIGTERM to the master, {len(failures)} failed, "
          f"longest {longest:.2f} s, served again after {outage:.2f} s")  # fmt: skip
    assert failures == [], failures[:5]
    assert longest < 20  # queued, then served by the restarted server: no client timed out
    status = sockets.holder_status(holder["control"])
    assert status["restarts"] == 1 and processes.alive(status["pid"])
    # The next deployment adopts the restarted server as the one to replace; stop stops it too.
    second = local.deploy_local(local_api, model(2))
    assert second.ok, second.detail
    assert not processes.alive(status["pid"])
    assert requests.get(f"{second.url}/model", timeout=10).json()["version"] == 2


def _hung(load: TimedLoad, moment: float) -> bool:
    return any(r[2] == "ReadTimeout" for r in load.after(moment))


def test_unwatched_a_dead_server_is_a_black_hole(local_api):
    """Negative control (the bug this guards against): nobody watching, clients hang until they give up."""
    first = local.deploy_local(local_api, model(1))
    assert first.ok, first.detail
    sockets.unwatch(local.load_state(local_api)["holder"]["control"])
    with TimedLoad(first.url, timeout_s=3.0) as load:
        wait_for("traffic served before the kill", lambda: _served(load) >= 10)
        killed_at = time.monotonic()
        os.kill(first.server.pid, signal.SIGTERM)
        wait_for("the master to exit", lambda: not processes.alive(first.server.pid), 60)
        wait_for("a request to hang until its timeout", lambda: _hung(load, killed_at), 30)
    hung = [r for r in load.after(killed_at) if r[2] == "ReadTimeout"]
    print(f"\n[numbers] unwatched: {len(hung)} requests hung until their 3 s timeout after the master died")
    assert hung and min(r[1] for r in hung) >= 2.9


def test_with_close_a_dead_server_means_refused_at_once(local_api, monkeypatch):
    monkeypatch.setenv("MLOPS_DEPLOY_ON_SERVER_EXIT", "close")
    from core.settings import load_settings

    settings = load_settings()
    first = local.deploy_local(settings, model(1))
    assert first.ok, first.detail
    holder = local.load_state(settings)["holder"]
    with TimedLoad(first.url) as load:
        wait_for("traffic served before the kill", lambda: _served(load) >= 10)
        killed_at = time.monotonic()
        os.kill(first.server.pid, signal.SIGTERM)
        closed = seconds_until("the holder to close", lambda: not processes.alive(holder["pid"]), 60)
        wait_for("a refused request", lambda: any(r[2] == "refused" for r in load.after(killed_at)), 30)
    after = load.after(killed_at)
    refused = [r for r in after if r[2] == "refused"]
    stuck = [r for r in after if r[2] not in ("ok", "refused")]
    longest = max(r[1] for r in after)
    print(f"\n[numbers] close: {len(after)} requests after SIGTERM to the master, {len(refused)} refused, "
          f"{len(stuck)} other failures, longest {longest:.2f} s, closed after {closed:.2f} s")  # fmt: skip
    assert refused and stuck == []
    assert max(r[1] for r in refused) < 2  # refused at once, never left to time out
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{first.url}/readyz", timeout=5)
    again = local.deploy_local(settings, model(1))  # the next deployment starts afresh
    assert again.ok, again.detail


def test_a_server_that_keeps_dying_is_given_up_and_the_port_closed(local_api, monkeypatch, tmp_path):
    crash = tmp_path / "crash-on-start"
    monkeypatch.setenv("STANDIN_CRASH_IF_EXISTS", str(crash))
    monkeypatch.setenv("MLOPS_DEPLOY_MAX_RESTARTS", "2")
    from core.settings import load_settings

    settings = load_settings()
    first = local.deploy_local(settings, model(1))
    assert first.ok, first.detail
    holder = local.load_state(settings)["holder"]
    crash.touch()  # from now on every start fails to load the model
    os.kill(first.server.pid, signal.SIGTERM)
    gave_up = seconds_until("the holder to give up", lambda: not processes.alive(holder["pid"]), 120)
    log = (local_api.deploy_logs / "holder.log").read_text()
    print(f"\n[numbers] crash loop: 2 restarts tried, port closed {gave_up:.2f} s after the first exit")
    assert log.count("restarted it as pid") == 2 and "restart limit reached" in log
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{first.url}/readyz", timeout=5)
