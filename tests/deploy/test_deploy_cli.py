"""The `mlops deploy` verb: option checks, --stop, and (with the registry) ref pinning and annotations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from manifests import lineage

import registry
from core.settings import load_settings
from registry import open_registry


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "k8s", "--stop"], "--stop cannot be used with --target k8s"),
        (["--target", "k8s", "--port", "9000"], "--port cannot be used with --target k8s"),
        (["--target", "local", "--dry-run"], "--dry-run cannot be used with --target local"),
        (["--target", "local", "--overlay", "staging"], "--overlay cannot be used with --target local"),
        (["--target", "local", "--stop", "--model", "production:1"], "--stop takes no --model"),
    ],
)
def test_wrong_options_are_usage_errors(cli, args, message):
    result = cli("deploy", *args)
    assert result.code == 2
    assert message in result.err


def test_target_is_required(cli):
    result = cli("deploy")
    assert result.code == 2 and "--target" in result.err


def test_unknown_overlay_names_the_known_ones(cli, kubectl):
    result = cli("deploy", "--target", "k8s", "--overlay", "qa", "--dry-run")
    assert result.code == 2
    assert "no kustomize overlay" in result.err and "production, staging" in result.err


def test_stop_with_nothing_running(cli):
    result = cli("deploy", "--target", "local", "--stop", "--json")
    assert result.code == 0
    assert json.loads(result.out)["detail"] == "no local deployment to stop"


@pytest.fixture
def promoted(settings, promote) -> int:
    """A version registered and promoted with the real registry; its version number."""
    reg = open_registry(settings)
    src = Path("candidate")
    src.mkdir()
    (src / "model.keras").write_bytes(b"not read by the stand-in server")
    manifest = {"model_file": "model.keras", "classes": ["covid", "normal"], "gate": {"passed": True}}
    version = reg.register(src, lineage(**manifest), actor="test")
    promote(reg, version.ref, actor="test", reason="deploy test")
    return version.version


def test_dry_run_pins_production_current(cli, kubectl, promoted):
    result = cli("deploy", "--target", "k8s", "--overlay", "staging", "--image-tag", "abc", "--dry-run")
    assert result.code == 0, result.err
    assert f"MLOPS_MODEL_REF: production:{promoted}" in result.out
    assert "image: mlops-xray-api:abc" in result.out
    assert "would run: " in result.err and "rollout undo deployment/xray-api -n mlops-staging" in result.err
    assert kubectl.verbs() == []


@pytest.mark.slow
def test_local_deploy_records_the_deployment(cli, local_api, promoted, settings):
    result = cli("deploy", "--target", "local", "--json")
    assert result.code == 0, result.err
    payload = json.loads(result.out)
    assert payload["ok"] and payload["model"]["version"] == promoted
    reg = open_registry(settings)
    (entry,) = reg.resolve(f"production:{promoted}").manifest.annotations.deployments
    assert entry.target == "local" and entry.result == "ok"
    assert cli("deploy", "--target", "local", "--stop").code == 0


@pytest.fixture
def tampered(settings, promote, cli) -> registry.Registry:
    """production:1 signed and promoted, then its registry copy altered (a clean copy stays cached)."""
    assert cli("keys", "init").code == 0
    reg = registry.open_registry(settings)
    src = Path("signed-candidate")
    src.mkdir()
    (src / "model.keras").write_bytes(b"the approved model")
    version = reg.register(
        src, lineage(**{"model_file": "model.keras", "gate": {"passed": True}}), actor="ci"
    )
    promote(reg, version.ref)
    stored = json.loads(reg.store.read(f"production/{reg.name}/1/manifest.json"))
    stored["metrics"] = {"accuracy": 0.97}  # the manifest edited to look better
    reg.store.write(f"production/{reg.name}/1/manifest.json", json.dumps(stored).encode())
    return reg


@pytest.mark.parametrize("target", [["--target", "local"], ["--target", "k8s", "--overlay", "staging"]])
def test_an_altered_version_is_refused_before_anything_is_rolled_out(cli, kubectl, tampered, target):
    result = cli("deploy", *target, "--model", "production:current")
    assert result.code == 1
    assert "production:1 differs from what was signed (changed: manifest.json)" in result.err
    assert kubectl.verbs() == []  # nothing applied
    assert registry.open_registry(load_settings()).audit()[-1]["attempted"] == "deploy"
    assert not (tampered.cache_dir.parent / "deploy" / "local.json").exists()  # no server started
