"""The API verifies a version's signature at load: a tampered registry never reaches /predict."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from manifests import lineage

from registry import open_registry
from registry.errors import IntegrityError, SignatureError
from registry.signing import generate_key_pair


@pytest.fixture
def signed(settings, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The session's test model registered as testing:1, signed, with signatures required (as on GKE)."""
    from core.settings import load_settings

    generate_key_pair(tmp_path / "k.pem", tmp_path / "k.pub")
    monkeypatch.setenv("MLOPS_SIGNING_PRIVATE_KEY", str(tmp_path / "k.pem"))
    monkeypatch.setenv("MLOPS_SIGNING_PUBLIC_KEYS", str(tmp_path / "k.pub"))
    monkeypatch.setenv("MLOPS_SIGNING_REQUIRED", "true")
    reg = open_registry(load_settings())
    manifest = {k: v for k, v in json.loads((model_dir / "manifest.json").read_text()).items()
                if k not in ("name", "version", "area")}  # fmt: skip
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.keras").write_bytes((model_dir / "model.keras").read_bytes())
    reg.register(src, lineage(**manifest), actor="ci")
    return reg


def _swap(reg, accuracy: float) -> None:
    """The probe from the issue: another model with a manifest checksum (and metrics) to match."""
    key = f"testing/{reg.name}/1/manifest.json"
    stored = json.loads(reg.store.read(key))
    other = b"another model entirely"
    stored["files"]["model.keras"] = {"sha256": hashlib.sha256(other).hexdigest(), "size": len(other)}
    stored["metrics"]["accuracy"] = accuracy
    reg.store.write(f"testing/{reg.name}/1/model.keras", other)
    reg.store.write(key, json.dumps(stored).encode())


def test_the_app_loads_a_signed_version_and_refuses_it_once_altered(signed, monkeypatch):
    from model_api import create_app

    app = create_app({"TESTING": True, "MODEL_REF": "testing:1"})
    assert app.test_client().get("/model").get_json()["metrics"]["accuracy"] == 0.9
    _swap(signed, accuracy=0.97)
    with pytest.raises(SignatureError, match=r"testing:1 differs from what was signed \(changed: manifest"):
        create_app({"TESTING": True, "MODEL_REF": "testing:1"})


def test_serve_refuses_in_one_line_before_gunicorn_starts(cli, signed):
    signed.fetch("testing:1")  # a clean copy in the cache must not hide the registry's
    _swap(signed, accuracy=0.97)
    result = cli("serve", "--model", "testing:1", "--port", "1")
    assert result.code == 1
    assert len(result.err.strip().splitlines()) == 1
    assert "testing:1 differs from what was signed" in result.err


def test_serve_refuses_an_unsigned_version_where_signatures_are_required(cli, signed):
    signed.store.delete(f"testing/{signed.name}/1/model.sig")
    result = cli("serve", "--model", "testing:1", "--port", "1")
    assert result.code == 1 and "is not signed and signing is required" in result.err


def _serve_refusals(cli) -> list[dict]:
    """The audit log's refused loads, as `mlops registry audit --json` lists them."""
    result = cli("registry", "audit", "--json")
    assert result.code == 0, result.err
    return [e for e in json.loads(result.out) if e["action"] == "refuse" and e.get("attempted") == "serve"]


def test_a_tampered_model_file_refused_at_load_is_audited(cli, signed):
    from model_api import create_app

    key = f"testing/{signed.name}/1/model.keras"
    signed.store.write(key, signed.store.read(key) + b"\0tampered")  # manifest and signature untouched
    with pytest.raises(IntegrityError, match="tampered"):
        create_app({"TESTING": True, "MODEL_REF": "testing:1"})
    (event,) = _serve_refusals(cli)
    stored = signed.store.read(f"testing/{signed.name}/1/manifest.json")
    assert (event["ref"], event["area"], event["version"], event["check"]) == (
        "testing:1",
        "testing",
        1,
        "checksum",
    )
    assert event["manifest_sha256"] == hashlib.sha256(stored).hexdigest()
    assert event["model_sha256"] == json.loads(stored)["files"]["model.keras"]["sha256"]
    assert "model.keras" in event["reason"] and "tampered" in event["reason"]
    assert event["actor"] and event["where"].endswith(f"pid {os.getpid()}")
    verified = cli("registry", "audit", "--verify", "--json")
    assert verified.code == 0 and json.loads(verified.out)["ok"], verified.out


def test_serve_refusing_an_unsigned_version_is_audited(cli, signed):
    signed.store.delete(f"testing/{signed.name}/1/model.sig")
    assert cli("serve", "--model", "testing:1", "--port", "1").code == 1
    (event,) = _serve_refusals(cli)
    assert (event["version"], event["check"]) == (1, "signature")
    assert "is not signed and signing is required" in event["reason"]
    assert cli("registry", "audit", "--verify").code == 0


def test_refusals_from_several_servers_at_once_keep_the_chain_intact(cli, signed):
    """Four `mlops serve` processes refusing together: four events, one unbroken chain."""
    _swap(signed, accuracy=0.97)
    before = cli("registry", "audit", "--json")
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "mlops.cli", "serve", "--model", "testing:1", "--port", "1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for server in servers:
        _out, err = server.communicate(timeout=120)
        assert server.returncode == 1 and "differs from what was signed" in err, err
    refusals = _serve_refusals(cli)
    assert len(refusals) == 4 and len({e["where"] for e in refusals}) == 4
    assert len(json.loads(cli("registry", "audit", "--json").out)) == len(json.loads(before.out)) + 4
    verified = cli("registry", "audit", "--verify", "--json")
    assert verified.code == 0 and json.loads(verified.out)["ok"], verified.out
