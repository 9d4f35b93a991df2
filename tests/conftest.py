"""Fixtures shared by every test area: a temp home per test, settings, and the CLI."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from gcs import fake_gcs  # noqa: F401  (session fixture: fake-gcs-server for any area)

from core.settings import Settings, load_settings
from mlops.cli import main


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test runs in its own folder with no MLOPS_* variables leaking in."""
    for key in list(os.environ):
        if key.startswith("MLOPS_"):
            monkeypatch.delenv(key)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("MLOPS_HOME", str(work / ".mlops"))
    # Servers a test starts serve no gRPC unless it asks: every worker of every `mlops serve` on port
    # 8081 would share it (SO_REUSEPORT) with the other tests' servers.
    monkeypatch.setenv("MLOPS_API_GRPC_PORT", "0")
    yield


@pytest.fixture
def jenkins_input(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Act as a Jenkins build step whose `input` was submitted by WHO (core.identity); product-owner first."""

    def submitted_by(who: str) -> None:
        monkeypatch.setenv("JENKINS_URL", "http://jenkins.test/")
        monkeypatch.setenv("BUILD_URL", "http://jenkins.test/job/mlops/7/")
        monkeypatch.setenv("MLOPS_INPUT_SUBMITTER", who)

    submitted_by("product-owner")
    return submitted_by


@pytest.fixture
def promote(jenkins_input):
    """Promote as the approval workflow does: passing tests recorded, approved over production now."""
    from registry import ModelVersion, Registry

    def run(
        reg: Registry, ref: str, actor: str = "po", reason: str = "", tested: bool = True
    ) -> ModelVersion:
        version = reg.resolve(ref)
        if tested and not version.manifest["annotations"]["tests"]:
            reg.annotate(version.ref, "tests", {"passed": True, "suite": "fixture"}, actor="ci")
        current = reg.pointer()["current"]
        return reg.promote(version.ref, expected_production=current, actor=actor, reason=reason)

    return run


@pytest.fixture
def settings() -> Settings:
    """Settings as the CLI would build them in this test's folder."""
    return load_settings()


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run `mlops ARGS...` in-process; returns exit code and captured output."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse exits on --help and usage errors
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def demo(cli, tmp_path: Path) -> Path:
    """A tiny demo dataset (`mlops demo-data`): 90 synthetic 32x32 images in 3 classes."""
    out = tmp_path / "demo"
    assert cli("demo-data", "--out", str(out), "--per-class", "30", "--size", "32").code == 0
    return out
