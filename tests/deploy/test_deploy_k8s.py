"""`mlops deploy --target k8s`: real `kubectl kustomize`, a recording kubectl stand-in, real smoke tests."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from core.settings import load_settings
from deploy import k8s, local
from deploy.model import Model


def model(version: int) -> Model:
    return Model(f"production:{version}", "xray-classifier", version)


def documents(manifests: str) -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all(manifests) if d}


def test_render_pins_image_tag_and_model(kubectl):
    settings = load_settings()
    manifests = k8s.render(settings, "staging", "git-abc123", model(7))
    docs = documents(manifests)
    deployment, config = docs["Deployment"], docs["ConfigMap"]
    pod = deployment["spec"]["template"]
    assert pod["spec"]["containers"][0]["image"] == "mlops-xray-api:git-abc123"
    assert config["data"]["MLOPS_MODEL_REF"] == "production:7"
    assert pod["metadata"]["annotations"]["mlops/model-version"] == "7"
    assert "production:7" in deployment["metadata"]["annotations"]["kubernetes.io/change-cause"]
    assert pod["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"] == config["metadata"]["name"]
    assert deployment["metadata"]["namespace"] == "mlops-staging"
    # What would be applied is still valid Kubernetes.
    done = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet",
         "-k", settings.deploy.kubernetes_version, "-"],
        input=manifests, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_new_model_changes_the_pod_template(kubectl):
    """Same image, other model: the ConfigMap name (hash) differs, so Kubernetes rolls the pods."""
    settings = load_settings()
    seven = documents(k8s.render(settings, "production", "t", model(7)))["Deployment"]["spec"]["template"]
    eight = documents(k8s.render(settings, "production", "t", model(8)))["Deployment"]["spec"]["template"]
    assert seven != eight
    ref = lambda pod: pod["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"]  # noqa: E731
    assert ref(seven) != ref(eight)


def test_dry_run_applies_nothing(kubectl):
    outcome = k8s.deploy_k8s(load_settings(), model(7), "production", "t1", dry_run=True)
    assert outcome.ok and outcome.namespace == "mlops"
    assert "kind: Deployment" in outcome.detail
    assert kubectl.verbs() == []  # only `kustomize` ran
    planned = [" ".join(c[1:3]) for c in outcome.commands]
    assert planned == ["apply -f", "rollout status", "port-forward -n", "rollout undo"]
    assert "--timeout=300s" in outcome.commands[1]


def test_unknown_overlay_is_a_usage_error(kubectl):
    with pytest.raises(k8s.UsageError, match=r"no kustomize overlay .*known overlays: production, staging"):
        k8s.render(load_settings(), "prod", "t", model(7))


@pytest.mark.slow
def test_good_rollout_is_smoke_tested_and_kept(kubectl, local_api):
    api = local.deploy_local(local_api, model(7))
    assert api.ok, api.detail
    outcome = k8s.deploy_k8s(load_settings(), model(7), "production", "t1", smoke_url=api.url)
    assert outcome.ok, outcome.detail
    assert outcome.smoke.passed and outcome.smoke.model["version"] == 7
    assert kubectl.verbs() == ["apply", "rollout status"]
    applied = next(c for c in kubectl.all() if c["argv"][0] == "apply")["stdin"]
    assert "MLOPS_MODEL_REF: production:7" in applied


def served_ref(kubectl, namespace: str = "mlops") -> str:
    """The model ref the cluster's Deployment pod template carries now."""
    return kubectl.deployment(namespace)["spec"]["template"]["metadata"]["annotations"]["mlops/model-ref"]


@pytest.mark.slow
def test_failed_rollout_is_undone(kubectl, local_api, monkeypatch):
    settings = load_settings()
    kubectl.seed(k8s.render(settings, "production", "t1", model(6)))  # v6 is live
    monkeypatch.setenv("KUBECTL_STANDIN_FAIL", "status")
    outcome = k8s.deploy_k8s(settings, model(7), "production", "t1", smoke_url="http://127.0.0.1:9")
    assert not outcome.ok
    assert "progress deadline" in outcome.detail and "rolled back to the previous revision" in outcome.detail
    assert kubectl.verbs() == ["apply", "rollout status", "rollout undo", "rollout status"]
    assert served_ref(kubectl) == "production:6"


@pytest.mark.slow
def test_smoke_failure_is_undone(kubectl, local_api):
    """The cluster still serves v7 (the stand-in API) while v8 was expected: undo."""
    api = local.deploy_local(local_api, model(7))
    assert api.ok, api.detail
    settings = load_settings()
    settings = settings.__class__(**{**settings.__dict__, "deploy": settings.deploy.__class__(
        **{**settings.deploy.__dict__, "smoke_timeout_s": 1})})  # fmt: skip
    kubectl.seed(k8s.render(settings, "production", "t1", model(7)))
    outcome = k8s.deploy_k8s(settings, model(8), "production", "t1", smoke_url=api.url)
    assert not outcome.ok
    assert "reports version 7, expected 8" in outcome.detail
    assert kubectl.verbs() == ["apply", "rollout status", "rollout undo", "rollout status"]
    assert served_ref(kubectl) == "production:7"


@pytest.mark.slow
def test_undo_failure_is_reported(kubectl, monkeypatch):
    """A first rollout that fails has no earlier revision: kubectl's undo says so, and so do we."""
    monkeypatch.setenv("KUBECTL_STANDIN_FAIL", "status")
    outcome = k8s.deploy_k8s(load_settings(), model(7), "production", "t1", smoke_url="http://127.0.0.1:9")
    assert not outcome.ok and "rollout undo FAILED: error: no rollout history found" in outcome.detail
    assert kubectl.verbs() == ["apply", "rollout status", "rollout undo"]


@pytest.mark.slow
def test_smoke_through_port_forward(kubectl, local_api, monkeypatch):
    api = local.deploy_local(local_api, model(7))
    assert api.ok, api.detail
    monkeypatch.setenv("KUBECTL_STANDIN_FORWARD", f"127.0.0.1:{local_api.api.port}")
    outcome = k8s.deploy_k8s(load_settings(), model(7), "staging", "t1")
    assert outcome.ok, outcome.detail
    assert kubectl.verbs() == ["apply", "rollout status", "port-forward"]
    forward = kubectl.all()[-1]["argv"]
    assert forward[:4] == ["port-forward", "-n", "mlops-staging", "service/xray-api"]


@pytest.mark.slow
def test_failure_on_an_unchanged_deployment_undoes_nothing(kubectl, monkeypatch):
    """Re-deploying what is live and failing must not roll the cluster back to an older revision."""
    settings = load_settings()
    kubectl.seed(k8s.render(settings, "production", "t1", model(6)))
    kubectl.seed(k8s.render(settings, "production", "t1", model(7)))  # v7 is live, v6 before it
    monkeypatch.setenv("KUBECTL_STANDIN_FAIL", "status")
    outcome = k8s.deploy_k8s(settings, model(7), "production", "t1", smoke_url="http://127.0.0.1:9")
    assert not outcome.ok and "unchanged, so nothing was undone" in outcome.detail
    assert kubectl.verbs() == ["apply", "rollout status"]
    assert served_ref(kubectl) == "production:7"
