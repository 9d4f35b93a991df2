"""The kubectl stand-in answers in kubectl's own output formats (kubectl reference docs: apply,
rollout status, rollout undo, get -o json), from the state of its simulated cluster."""

from __future__ import annotations

import pytest
import yaml

from core.settings import load_settings
from deploy import k8s
from deploy.model import Model


def render(version: int) -> str:
    return k8s.render(load_settings(), "production", "t1", Model(f"production:{version}", "x", version))


def config_map_name(manifests: str) -> str:
    docs = [d for d in yaml.safe_load_all(manifests) if d]
    return next(d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap")


def test_apply_prints_kind_group_name_and_what_happened(kubectl):
    manifests = render(7)
    first = kubectl.run("apply", "-f", "-", stdin=manifests)
    assert first.returncode == 0
    assert first.stdout.splitlines() == [
        "namespace/mlops created",
        "serviceaccount/xray-api created",
        f"configmap/{config_map_name(manifests)} created",
        "service/xray-api created",
        "deployment.apps/xray-api created",
        "poddisruptionbudget.policy/xray-api created",
        "horizontalpodautoscaler.autoscaling/xray-api created",
        "ingress.networking.k8s.io/xray-api created",
    ]
    again = kubectl.run("apply", "-f", "-", stdin=manifests)
    assert again.stdout.splitlines() == [
        line.replace("created", "unchanged") for line in first.stdout.splitlines()
    ]
    newer = render(8)
    changed = kubectl.run("apply", "-f", "-", stdin=newer).stdout.splitlines()
    assert f"configmap/{config_map_name(newer)} created" in changed  # a new model: a new hashed ConfigMap
    assert "deployment.apps/xray-api configured" in changed
    assert "service/xray-api unchanged" in changed


def test_rollout_status_waits_then_reports_success(kubectl):
    kubectl.run("apply", "-f", "-", stdin=render(7))
    done = kubectl.run("rollout", "status", "deployment/xray-api", "-n", "mlops", "--timeout=300s")
    lines = done.stdout.splitlines()
    assert done.returncode == 0
    assert lines[0].startswith('Waiting for deployment "xray-api" rollout to finish: ')
    assert lines[-1] == 'deployment "xray-api" successfully rolled out'


def test_rollout_undo_needs_an_earlier_revision_and_restores_it(kubectl):
    kubectl.run("apply", "-f", "-", stdin=render(6))
    alone = kubectl.run("rollout", "undo", "deployment/xray-api", "-n", "mlops")
    assert (alone.returncode, alone.stderr) == (
        1,
        'error: no rollout history found for deployment "xray-api"\n',
    )
    kubectl.run("apply", "-f", "-", stdin=render(7))
    assert kubectl.deployment("mlops")["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    undo = kubectl.run("rollout", "undo", "deployment/xray-api", "-n", "mlops")
    assert (undo.returncode, undo.stdout) == (0, "deployment.apps/xray-api rolled back\n")
    live = kubectl.deployment("mlops")
    assert live["spec"]["template"]["metadata"]["annotations"]["mlops/model-ref"] == "production:6"
    assert (
        live["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    )  # renumbered, as k8s does
    assert live["status"]["observedGeneration"] == live["metadata"]["generation"] == 3


@pytest.mark.parametrize("argv", [("get", "deployment", "xray-api", "-n", "mlops", "-o", "json"),
                                  ("rollout", "status", "deployment/xray-api", "-n", "mlops")])  # fmt: skip
def test_a_missing_deployment_is_not_found(kubectl, argv):
    done = kubectl.run(*argv)
    assert (done.returncode, done.stderr) == (
        1,
        'Error from server (NotFound): deployments.apps "xray-api" not found\n',
    )
