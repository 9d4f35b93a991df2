"""Registry fixtures: a registry per store kind (local folder, GCS via fake-gcs-server)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from manifests import lineage

from registry import Registry
from registry.manifest import TestRun


@pytest.fixture
def model_dir(tmp_path: Path) -> Callable[..., Path]:
    """Make a folder that looks like a training run's output (model, report, plots)."""
    counter = iter(range(1, 10_000))

    def make(model_bytes: bytes | None = None) -> Path:
        n = next(counter)
        src = tmp_path / f"run{n}"
        (src / "plots").mkdir(parents=True)
        (src / "model.keras").write_bytes(model_bytes if model_bytes is not None else os.urandom(2048))
        (src / "report.html").write_text(f"<html>run {n}</html>")
        (src / "plots" / "confusion.png").write_bytes(b"\x89PNG" + os.urandom(64))
        return src

    return make


@pytest.fixture(params=["local", pytest.param("gcs", marks=pytest.mark.gcs)])
def registry_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty registry root of each store kind."""
    if request.param == "local":
        return f"file://{tmp_path / 'registry'}"
    fake_gcs = request.getfixturevalue("fake_gcs")
    return fake_gcs.new_bucket(f"reg-{uuid.uuid4().hex[:12]}") + "/models"


@pytest.fixture
def reg(registry_uri: str, tmp_path: Path) -> Registry:
    """A registry for model 'xray' with its own fetch cache."""
    return Registry.open(registry_uri, "xray", cache_dir=tmp_path / "cache")


@pytest.fixture
def manifest() -> dict:
    """What training hands the registry (the registry fills name, version, files...)."""
    return lineage()


APPROVER = "product-owner"  # the default deploy.approvers


@pytest.fixture(autouse=True)
def _approver_account(os_approver: str) -> str:
    """The registry contract runs with no trust policy: this test's OS account approves (core.identity)."""
    return os_approver


@pytest.fixture
def signing_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A key pair configured as production configures it: sign with it, verify with it, require it."""
    from registry.signing import generate_key_pair

    private, public = tmp_path / "keys" / "signing-key.pem", tmp_path / "keys" / "signing-key.pub"
    generate_key_pair(private, public)
    monkeypatch.setenv("MLOPS_SIGNING_PRIVATE_KEY", str(private))
    monkeypatch.setenv("MLOPS_SIGNING_PUBLIC_KEYS", str(public))
    monkeypatch.setenv("MLOPS_SIGNING_REQUIRED", "true")
    return private, public


@pytest.fixture
def promote():
    """Promote in the registry's no-trust-policy mode, as this test's OS account (mapped to the approver
    by os_approver): the registry contract without keys. The signed mode is tests/conftest.py's."""
    from registry import ModelVersion

    def run(
        reg: Registry, ref: str, actor: str = "po", reason: str = "", tested: bool = True
    ) -> ModelVersion:
        version = reg.resolve(ref)
        if tested and not version.manifest.annotations.tests:
            reg.annotate(version.ref, TestRun(passed=True, suite="fixture"), actor="ci")
        current = reg.pointer()["current"]
        return reg.promote(version.ref, expected_production=current, actor=actor, reason=reason)

    return run
