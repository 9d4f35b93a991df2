"""`mlops deploy --target local --stop` stops every process it started, and only those.

Real gunicorn (the stand-in app), real signals: a server the socket holder restarted outlives the
holder's SIGKILL; a pid recorded for the deployment but now owned by another process is left alone;
a port somebody else listens on is reported with that somebody's pid.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from core import processes
from core.process_identity import identity
from deploy import local, sockets
from deploy.model import Model

pytestmark = pytest.mark.slow


def model(version: int) -> Model:
    return Model(f"production:{version}", "xray-classifier", version)


def _wait_for(predicate, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/readyz", timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def test_stop_stops_the_server_a_dead_holder_restarted(local_api, cli):
    first = local.deploy_local(local_api, model(1))
    assert first.ok, first.detail
    holder = local.load_state(local_api)["holder"]
    os.kill(first.server.pid, signal.SIGTERM)  # dies on its own: the holder restarts it

    def restarted() -> int | None:
        pid = (sockets.holder_status(holder["control"]) or {}).get("pid")
        return pid if pid not in (None, first.server.pid) else None

    _wait_for(restarted, 60)
    orphan = restarted()
    os.kill(holder["pid"], signal.SIGKILL)  # then the holder dies, without a word
    _wait_for(lambda: not processes.alive(holder["pid"]), 10)
    _wait_for(lambda: _answers(first.url), 60)  # the restarted server still serves the port

    with pytest.raises(local.MlopsError, match=rf"pid {orphan} holds it.*--stop"):
        local.deploy_local(local_api, model(2))  # says who holds the port and what to do

    result = cli("deploy", "--target", "local", "--stop")
    assert result.code == 0, result.err
    assert f"pid {orphan}" in result.out, result.out
    assert not processes.alive(orphan)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{first.url}/readyz", timeout=5)
    again = local.deploy_local(local_api, model(2))
    assert again.ok, again.detail
    assert requests.get(f"{again.url}/model", timeout=10).json()["version"] == 2


@pytest.mark.parametrize("differs", ["start_time", "program"])
def test_a_recorded_pid_now_owned_by_another_process_is_left_alone(local_api, differs):
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        _wait_for(
            lambda: identity(bystander.pid) and identity(bystander.pid)["cmdline"] == ["sleep", "60"], 10
        )
        real = identity(bystander.pid)
        recorded = {
            "pid": bystander.pid,
            "start_time": real["start_time"] - 1 if differs == "start_time" else real["start_time"],
            "cmdline": [sys.executable, "-m", "mlops.cli", "serve"]
            if differs == "program"
            else real["cmdline"],
        }
        server = {"admin_port": 1, "ref": "production:1", "name": "xray-classifier", "version": 1,
                  "log": "x.log", "started_at": "2024-01-01T00:00:00", "workers": 2, **recorded}  # fmt: skip
        local_api.deploy_dir.mkdir(parents=True)
        local_api.deploy_state.write_text(json.dumps({"host": "127.0.0.1", "port": 1, "current": server}))
        folder = local_api.deploy_dir / "processes"  # deploy.process_records
        folder.mkdir()
        (folder / f"{bystander.pid}-{recorded['start_time']}.json").write_text(
            json.dumps({**recorded, "role": "server", "version": 1})
        )
        message = local.stop_local(local_api)
        time.sleep(0.3)
        assert bystander.poll() is None, "an unrelated process was signalled"
        assert f"left alone pid {bystander.pid}" in message, message
    finally:
        bystander.kill()
        bystander.wait()


def test_a_foreign_process_on_the_port_is_named(local_api):
    port = local_api.api.port
    squatter = subprocess.Popen(
        [sys.executable, "-c",
         f"import socket, time\ns = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); "
         "print('up', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert squatter.stdout.readline().strip() == "up"
        with pytest.raises(
            local.MlopsError, match=rf"cannot listen on 127.0.0.1:{port}: .*pid {squatter.pid} .*pick --port"
        ):
            local.deploy_local(local_api, model(1))
        assert squatter.poll() is None
    finally:
        squatter.kill()
        squatter.wait()
        squatter.stdout.close()
    with socket.socket() as probe:  # nothing of ours was left on the port either
        probe.bind(("127.0.0.1", port))
