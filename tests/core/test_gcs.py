"""core.gcs: the one storage client factory, and the project it uses (docs/architecture.md, GCS)."""

from __future__ import annotations

from pathlib import Path

import pytest
from project_packages import project_packages

from core.gcs import EMULATOR_PROJECT, CredentialsError, storage_client


def test_against_an_emulator_the_project_is_google_cloud_project(monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "team-project")
    assert storage_client().project == "team-project"


def test_against_an_emulator_without_a_project_it_is_a_local_name(monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    assert storage_client().project == EMULATOR_PROJECT == "mlops-local"


def test_real_gcs_without_credentials_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))
    with pytest.raises(CredentialsError, match=r"gcloud auth application-default login"):
        storage_client()


def test_no_other_package_builds_its_own_client():
    """Three factories used to disagree on the project: only core/gcs.py may call storage.Client."""
    root = Path(__file__).resolve().parents[2]
    builders = sorted(
        str(path.relative_to(root))
        for package in project_packages()
        for path in (root / package).rglob("*.py")
        if "storage.Client(" in path.read_text()
    )
    assert builders == ["core/gcs.py"]
