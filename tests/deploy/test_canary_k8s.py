"""`mlops deploy --target k8s --canary`: the real CLI, the kubectl stand-in, real `mlops serve` on loopback.

The stand-in's cluster runs production v1; each side's pods are real servers (tests/deploy/fault_serve.py:
the real app, a fault injected into v3) that `kubectl port-forward deployment/xray-api-canary` and
`pod/xray-api-...` reach. Real HTTP traffic goes to both, three clients to one, like the Service would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from load import Load
from test_canary_local import FAULT_SERVE, candidates, traffic  # noqa: F401  (fixture)

import registry
from core.processes import free_port, terminate, wait_ready
from core.settings import load_settings
from deploy import k8s
from deploy.model import Model
from registry.manifest import TestRun

pytestmark = pytest.mark.slow


@pytest.fixture
def servers(candidates, monkeypatch) -> Iterator[dict[int, str]]:  # noqa: F811
    """Real `mlops serve` for v1 (production:1), v2 and v3 (collapsed to one class), one worker each."""
    monkeypatch.setenv("MLOPS_FAULT_INJECT", "3=collapse")
    monkeypatch.setenv("MLOPS_MONITOR_LOG_PREDICTIONS", "false")
    for name, value in {
        "REQUESTS": "60",
        "MIN_REQUESTS": "30",
        "INTERVAL_S": "0.5",
        "DURATION_S": "60",
    }.items():
        monkeypatch.setenv(f"MLOPS_CANARY_{name}", value)
    refs = {1: "production:1", 2: "testing:2", 3: "testing:3"}
    started, urls = [], {}
    try:
        for version, ref in refs.items():
            port = free_port()
            cmd = [sys.executable, str(FAULT_SERVE), "--model", ref, "--port", str(port),
                   "--workers", "1", "--threads", "4"]  # fmt: skip
            started.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            urls[version] = f"127.0.0.1:{port}"
        for process, url in zip(started, urls.values(), strict=True):
            why = wait_ready(f"http://{url}/readyz", 120, lambda p=process: p.poll() is None)
            assert why is None, why
        reg = registry.open_registry(load_settings())
        for ref in ("testing:2", "testing:3"):  # the promotion policy wants passing model tests
            reg.annotate(ref, TestRun(passed=True, suite="fixture"), actor="ci")
        yield urls
    finally:
        for process in started:
            terminate(process, 10)


def live_production(kubectl, servers, monkeypatch, canary: int) -> None:
    """The cluster runs production:1 on two pods; the canary's pods are server CANARY."""
    settings = load_settings()
    manifests = k8s.render(settings, "production", "t1", Model("production:1", "xray-classifier", 1))
    kubectl.seed(manifests)
    forwards = {"xray-api": servers[1], "xray-api-canary": servers[canary]}
    monkeypatch.setenv("KUBECTL_STANDIN_FORWARDS", json.dumps(forwards))
    # After a full rollout the Service reaches the new pods: the smoke test's port-forward goes there.
    monkeypatch.setenv("KUBECTL_STANDIN_FORWARD", servers[canary])


def both_sides(servers, canary: int) -> tuple[Load, Load]:
    return traffic(f"http://{servers[1]}", threads=3), traffic(f"http://{servers[canary]}", threads=1)


def test_healthy_canary_is_promoted_and_rolled_out(cli, kubectl, servers, monkeypatch):
    live_production(kubectl, servers, monkeypatch, canary=2)
    baseline, canary = both_sides(servers, 2)
    with baseline, canary:
        done = cli("deploy", "--target", "k8s", "--model", "testing:2", "--canary", "25", "--image-tag", "t2",
                   "--json")  # fmt: skip
    assert done.code == 0, done.out[-1500:] + done.err[-3000:]
    outcome = json.loads(done.out)
    assert outcome["decision"] == "promoted" and outcome["verdict"] == "pass", outcome
    assert outcome["split"]["unit"] == "pods" and outcome["split"]["canary"] == 1
    assert outcome["figures"]["canary"]["requests"] >= 60 and outcome["figures"]["baseline"]["requests"] >= 30
    # Promoted through the registry's policy, and production rolled out to it.
    assert registry.open_registry(load_settings()).pointer()["current"] == 2
    assert kubectl.verbs() == [
        "get", "apply", "rollout status", "get", "port-forward", "port-forward",  # the canary, analysed
        "apply", "rollout status", "port-forward",  # deploy_k8s: production to v2, smoke-tested
        "delete",
    ]  # fmt: skip
    pod = kubectl.deployment("mlops")["spec"]["template"]
    assert pod["metadata"]["annotations"]["mlops/model-ref"] == "production:2"
    assert pod["spec"]["containers"][0]["image"].endswith(":t2")
    gone = kubectl.run("get", "deployment", "xray-api-canary", "-n", "mlops", "-o", "json")
    assert gone.returncode == 1 and "NotFound" in gone.stderr
    canary_apply = next(c for c in kubectl.all() if c["argv"][0] == "apply")["stdin"]
    assert "name: xray-api-canary" in canary_apply and "name: xray-api\n" not in canary_apply
    assert baseline.failures == [] and canary.failures == []


def test_faulty_canary_is_deleted_and_production_untouched(cli, kubectl, servers, monkeypatch):
    live_production(kubectl, servers, monkeypatch, canary=3)
    before = kubectl.deployment("mlops")
    kubectl.log.unlink()
    baseline, canary = both_sides(servers, 3)
    with baseline, canary:
        done = cli("deploy", "--target", "k8s", "--model", "testing:3", "--canary", "25", "--json")
    assert done.code == 3, done.out[-1500:] + done.err[-3000:]
    outcome = json.loads(done.out)
    assert outcome["decision"] == "pulled" and "class shares" in " ".join(outcome["reasons"]), outcome
    assert kubectl.verbs() == [
        "get",
        "apply",
        "rollout status",
        "get",
        "port-forward",
        "port-forward",
        "delete",
    ]
    assert kubectl.all()[-1]["argv"] == ["delete", "deployment", "xray-api-canary", "-n", "mlops"]
    assert kubectl.deployment("mlops") == before  # production untouched: same template, same revision
    reg = registry.open_registry(load_settings())
    assert reg.pointer()["current"] == 1
    events = [e for e in reg.audit() if e.get("action") == "canary"]
    assert events[-1]["decision"] == "pulled" and events[-1]["ref"] == "testing:3"


def test_canary_needs_a_production_deployment(cli, kubectl, candidates):  # noqa: F811
    done = cli("deploy", "--target", "k8s", "--model", "testing:2", "--canary", "25")
    assert done.code == 2
    assert "no Deployment xray-api in namespace mlops to compare a canary with" in done.err
    assert kubectl.verbs() == ["get"]  # nothing applied
