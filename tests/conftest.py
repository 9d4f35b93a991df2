"""Fixtures shared by every test area: a temp home per test, settings, and the CLI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from gcs import fake_gcs  # noqa: F401  (session fixture: fake-gcs-server for any area)
from trust_keys import TrustSet, make_trust, sign_tests

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
def os_approver(monkeypatch: pytest.MonkeyPatch) -> str:
    """With no trust policy the approver is this process's OS account (core.identity): map it to
    product-owner, as deploy.approver_accounts does on a shared machine."""
    from core.identity import os_account

    monkeypatch.setenv("MLOPS_DEPLOY_APPROVER_ACCOUNTS", f"{os_account()}=product-owner")
    return "product-owner"


@pytest.fixture
def trust(_isolated_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TrustSet:
    """A test trust policy and its key pairs (trainer, tester, approver product-owner), in force.

    Tests that promote run under it (pytest_collection_modifyitems below makes it their first
    fixture), so their versions are signed at registration and approvals are signed statements.
    """
    return make_trust(tmp_path / "trust-set", monkeypatch)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that promotes gets the trust set before any registry or settings fixture is built."""
    for item in items:
        names = getattr(item, "fixturenames", None)
        if names is not None and "promote" in names and "trust" in names:
            names.remove("trust")
            names.insert(names.index("_isolated_env") + 1, "trust")


@pytest.fixture
def promote(trust: TrustSet):
    """Promote as the approval workflow does: a signed passing test run, approved with the approver key."""
    from registry import ModelVersion, Registry
    from registry.policy import Policy

    def run(
        reg: Registry, ref: str, actor: str = "po", reason: str = "", tested: bool = True
    ) -> ModelVersion:
        reg = Registry(reg.store, reg.name, reg.cache_dir, Policy.from_settings(load_settings()))
        version = reg.resolve(ref)
        if tested:
            sign_tests(reg, version.ref, trust)
        current = reg.pointer()["current"]
        return reg.promote(
            version.ref,
            expected_production=current,
            actor=actor,
            reason=reason,
            approved_by="product-owner",
            approver_key=trust.key("product-owner"),
        )

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
