"""A real SMTP server (aiosmtpd) on loopback, and a registered version to write about."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope
from manifests import lineage

from core.processes import free_port
from registry import open_registry
from registry.manifest import TestRun, load


class Collector:
    """aiosmtpd handler that keeps every envelope it is given."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server, session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, Collector]]:
    """A plain SMTP server on a free loopback port."""
    handler = Collector()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, handler
    controller.stop()


@pytest.fixture
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl), to test STARTTLS with verification on."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_smtp_server(tls_files) -> Iterator[tuple[Controller, Collector]]:
    """An SMTP server that requires STARTTLS and then login as mlops/s3cret."""
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
        def text(value: str | bytes) -> str:
            return value.decode() if isinstance(value, bytes) else value

        ok = (text(auth_data.login), text(auth_data.password)) == ("mlops", "s3cret")
        return AuthResult(success=ok, handled=False)  # not handled: the server answers 535 itself

    handler = Collector()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
    )
    controller.start()
    yield controller, handler
    controller.stop()


@pytest.fixture
def make_version(settings, tmp_path: Path):
    """Register a version (gate passed or not, with optional test results); returns its ref."""
    reg = open_registry(settings)

    def make(gate_passed: bool = True, tests: dict | None = None) -> str:
        src = tmp_path / "version"
        src.mkdir()
        (src / "model.keras").write_bytes(b"not loaded when notifying")
        (src / "report.html").write_text("<html><body><h1>Evaluation report</h1></body></html>")
        manifest = {
            "model_file": "model.keras",
            "classes": ["covid", "normal"],
            "code": {"commit": "abc1234", "repo": "git@example.com:xray.git", "build_url": None},
            "dataset": {"uri": "gs://data/xray", "fingerprint": "f" * 64},
            "metrics": {
                "accuracy": 0.9 if gate_passed else 0.55,
                "per_class": {
                    "covid": {"precision": 0.91, "recall": 0.88, "f1": 0.895, "support": 50},
                    "normal": {"precision": 0.89, "recall": 0.92, "f1": 0.905, "support": 50},
                },
            },
            "gate": {
                "passed": gate_passed,
                "reasons": []
                if gate_passed
                else ["accuracy 0.550 < threshold 0.800", "recall normal 0.2 < 0.6"],
            },
        }
        version = reg.register(src, lineage(**manifest), actor="pytest")
        if tests is not None:
            reg.annotate(version.ref, load(TestRun, tests), actor="pytest")
        return version.ref

    return make


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening on it."""
    return free_port()
