"""The pod-spec translation refuses what it cannot reproduce with docker, so no field escapes the tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from podspec import Untranslatable, docker_run_for, quantity


def pod(**container) -> dict:
    base = {"name": "api", "image": "img", "command": ["mlops-serve"], "args": ["--port", "8080"]}
    return {"containers": [{**base, **container}], "terminationGracePeriodSeconds": 45}


def test_quantities():
    assert quantity("256Mi") == 256 * 2**20
    assert quantity("500m") == 0.5
    assert quantity("2") == 2
    with pytest.raises(Untranslatable):
        quantity("lots")


def test_restricted_container_becomes_restricted_docker_flags():
    spec = pod(
        securityContext={
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}],
        resources={"limits": {"memory": "1Gi", "cpu": "500m"}},
        envFrom=[{"configMapRef": {"name": "cfg"}}],
        env=[{"name": "A", "value": "1"}],
    )
    spec["volumes"] = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    run = docker_run_for(spec, "api", {"cfg": {"B": "2"}}, image="img", env_overrides={"B": "3"})
    flags = run.flags
    assert flags[:2] == ["--user", "10001:10001"]
    assert "--read-only" in flags and "--cap-drop=ALL" in flags
    assert flags[flags.index("--security-opt") + 1] == "no-new-privileges"
    assert flags[flags.index("--memory") + 1] == str(2**30)
    assert flags[flags.index("--cpus") + 1] == "0.5"
    assert f"type=tmpfs,destination=/tmp,tmpfs-mode=1777,tmpfs-size={64 * 2**20}" in flags
    assert "A=1" in flags and "B=3" in flags and "B=2" not in flags
    assert run.argv == ["--port", "8080"] and flags[flags.index("--entrypoint") + 1] == "mlops-serve"
    assert run.grace_s == 45


@pytest.mark.parametrize(
    "container",
    [
        {"env": [{"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
        {"envFrom": [{"secretRef": {"name": "s"}}]},
        {"workingDir": "/x"},
        {"resources": {"limits": {"ephemeral-storage": "1Gi"}}},
        {"securityContext": {"runAsNonRoot": True}},
        {"volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}]},
    ],
)
def test_untranslatable_fields_fail_loudly(container):
    spec = pod(**container)
    spec["volumes"] = [{"name": "cfg", "configMap": {"name": "c"}}]
    with pytest.raises(Untranslatable):
        docker_run_for(spec, "api", {}, image="img")


def test_secret_env_is_resolved_as_the_kubelet_resolves_it():
    token = {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "feedback", "key": "token"}}}
    optional = {
        "name": "EXTRA",
        "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k", "optional": True}},
    }
    spec = pod(env=[token, optional])
    run = docker_run_for(spec, "api", {}, image="img", secrets={"feedback": {"token": "s3cret"}})
    assert "TOKEN=s3cret" in run.flags
    assert not any(flag.startswith("EXTRA=") for flag in run.flags)  # optional and missing: unset
    with pytest.raises(Untranslatable, match="key 'token' of Secret 'feedback'"):
        docker_run_for(spec, "api", {}, image="img", secrets={"feedback": {"other": "x"}})
    field_ref = {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    with pytest.raises(Untranslatable, match="only secretKeyRef"):
        docker_run_for(pod(env=[field_ref]), "api", {}, image="img")


def _trust_pod() -> dict:
    mount = {"name": "trust-policy", "mountPath": "/etc/mlops/trust", "readOnly": True}
    spec = pod(volumeMounts=[mount])
    spec["volumes"] = [{"name": "trust-policy", "secret": {"secretName": "trust", "defaultMode": 0o444}}]
    return spec


def test_a_secret_volume_is_written_as_the_kubelet_mounts_it(tmp_path):
    secret = {"trust": {"policy.toml": "allow_unsigned = false\n", "trainer.pub": "PEM"}}
    run = docker_run_for(_trust_pod(), "api", {}, image="img", secrets=secret, volume_root=tmp_path)
    host, path, mode = run.flags[run.flags.index("-v") + 1].split(":")
    assert (path, mode) == ("/etc/mlops/trust", "ro")
    files = {p.name: (p.read_text(), p.stat().st_mode & 0o777) for p in Path(host).iterdir()}
    assert files == {"policy.toml": ("allow_unsigned = false\n", 0o444), "trainer.pub": ("PEM", 0o444)}


def test_a_required_secret_volume_the_test_does_not_provide_is_refused(tmp_path):
    with pytest.raises(Untranslatable, match="needs Secret 'trust'"):
        docker_run_for(_trust_pod(), "api", {}, image="img", volume_root=tmp_path)
    with pytest.raises(Untranslatable, match="not a file name"):
        docker_run_for(
            _trust_pod(), "api", {}, image="img", secrets={"trust": {"../x": "y"}}, volume_root=tmp_path
        )
