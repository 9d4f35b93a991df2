"""`mlops deploy --target local`: real gunicorn processes on loopback, switched under load."""

from __future__ import annotations

import socket
import threading

import pytest
import requests
from load import Load
from polling import wait_for

from core import processes
from deploy import local
from deploy.model import Model

pytestmark = pytest.mark.slow


def model(version: int) -> Model:
    return Model(f"production:{version}", "xray-classifier", version)


def current_version(url: str) -> int:
    return requests.get(f"{url}/model", timeout=10).json()["version"]


@pytest.mark.parametrize("keepalive", [False, True], ids=["new-connections", "keep-alive"])
def test_switch_under_load_drops_no_request(local_api, keepalive):
    first = local.deploy_local(local_api, model(1))
    assert first.ok, first.detail
    assert current_version(first.url) == 1
    with Load(first.url, keepalive=keepalive) as load:
        wait_for("load on the first version", lambda: load.requests > 20)
        second = local.deploy_local(local_api, model(2))
        seen_before_end = load.requests
        wait_for("load on the second version", lambda: load.requests > seen_before_end + 20)
    assert second.ok, second.detail
    assert load.failures == [], f"{len(load.failures)} of {load.requests} failed: {load.failures[:5]}"
    assert load.requests > seen_before_end > 20
    assert load.versions[1] > 0 and load.versions[2] > 0  # the loop really spanned the switch
    assert current_version(second.url) == 2
    state = local.load_state(local_api)
    assert state["current"]["version"] == 2 and state["previous"]["version"] == 1
    assert not processes.alive(first.server.pid)
    assert processes.alive(second.server.pid)


def test_server_that_cannot_load_leaves_the_old_one_serving(local_api, monkeypatch):
    first = local.deploy_local(local_api, model(1))
    assert first.ok, first.detail
    monkeypatch.setenv("STANDIN_CRASH", "4")
    with Load(first.url) as load:
        failed = local.deploy_local(local_api, model(4))
    assert not failed.ok
    assert "exited while starting" in failed.detail and "still serving v1" in failed.detail
    assert load.failures == [] and set(load.versions) == {1}
    assert current_version(first.url) == 1
    assert local.load_state(local_api)["current"]["version"] == 1


@pytest.mark.parametrize(
    ("env", "expected"),
    [("STANDIN_BROKEN", "/predict answered 500"), ("STANDIN_WRONG", "reports version 105, expected 5")],
)
def test_smoke_failure_rolls_back(local_api, monkeypatch, env, expected):
    first = local.deploy_local(local_api, model(1))
    assert first.ok, first.detail
    monkeypatch.setenv(env, "5")
    failed = local.deploy_local(local_api, model(5))
    assert not failed.ok
    assert expected in failed.detail
    assert failed.server.pid == first.server.pid and processes.alive(first.server.pid)
    assert current_version(first.url) == 1


def test_first_deploy_failure_releases_the_port(local_api, monkeypatch):
    monkeypatch.setenv("STANDIN_CRASH", "1")
    failed = local.deploy_local(local_api, model(1))
    assert not failed.ok and "nothing is serving" in failed.detail
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{failed.url}/readyz", timeout=5)


def test_stop_releases_the_port(local_api):
    first = local.deploy_local(local_api, model(1))
    assert first.ok, first.detail
    assert local.stop_local(local_api).startswith("stopped API pid")
    assert not processes.alive(first.server.pid)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{first.url}/readyz", timeout=5)
    assert local.stop_local(local_api) == "the local API was not running"


def test_port_in_use_is_a_clear_error(local_api):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", local_api.api.port))
        squatter.listen()
        with pytest.raises(local.MlopsError, match=r"cannot listen on 127.0.0.1:\d+: .*pick --port"):
            local.deploy_local(local_api, model(1))
    assert local.load_state(local_api) == {}


def test_concurrent_deploys_take_turns(local_api):
    first = local.deploy_local(local_api, model(1))
    assert first.ok, first.detail
    outcomes = {}
    threads = [
        threading.Thread(target=lambda v=v: outcomes.__setitem__(v, local.deploy_local(local_api, model(v))))
        for v in (2, 3)
    ]
    with Load(first.url) as load:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert all(outcome.ok for outcome in outcomes.values()), outcomes
    assert load.failures == []
    state = local.load_state(local_api)
    last = state["current"]["version"]
    assert last in (2, 3) and state["previous"]["version"] == 5 - last, (state, outcomes)
    assert current_version(first.url) == last
    alive = [o.server.pid for o in outcomes.values() if processes.alive(o.server.pid)]
    assert alive == [state["current"]["pid"]]


def test_failed_check_after_the_switch_restarts_the_previous_version(local_api, monkeypatch):
    """v6 passes on its private port but never serves the stable one: v1 is started again."""
    first = local.deploy_local(local_api, model(1))
    assert first.ok, first.detail
    monkeypatch.setenv("STANDIN_PRIVATE_ONLY", "6")
    failed = local.deploy_local(local_api, model(6))
    assert not failed.ok
    assert failed.detail.startswith("after the switch:") and failed.detail.endswith("restarted v1")
    assert failed.server.version == 1 and failed.server.pid != first.server.pid
    assert current_version(first.url) == 1
    state = local.load_state(local_api)
    assert state["current"]["version"] == 1 and state["previous"]["version"] == 6
