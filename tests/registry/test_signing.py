"""Signed versions on both stores: tampering, foreign keys, missing signatures, copies, key rotation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from registry import IntegrityError, Registry
from registry.errors import SignatureError
from registry.signing import (
    SIGNATURE_FILE,
    SigningConfig,
    generate_key_pair,
    public_key_id,
    sign_folder,
    staged_folder,
)

MANIFEST = "testing/xray/1/manifest.json"


def _open(registry_uri: str, tmp_path: Path, cache: str = "cache") -> Registry:
    return Registry.open(registry_uri, "xray", cache_dir=tmp_path / cache)


def _swap_model_and_manifest(reg: Registry, model: bytes, accuracy: float = 0.97) -> dict:
    """The attack: replace the model and rewrite the manifest's checksum (and metrics) to match."""
    stored = json.loads(reg.store.read(MANIFEST))
    stored["files"]["model.keras"] = {"sha256": hashlib.sha256(model).hexdigest(), "size": len(model)}
    stored["metrics"]["accuracy"] = accuracy
    reg.store.write("testing/xray/1/model.keras", model)
    reg.store.write(MANIFEST, (json.dumps(stored, indent=2, sort_keys=True) + "\n").encode())
    return stored


def test_a_signed_version_carries_its_signature_and_verifies(
    signing_keys, registry_uri, tmp_path, model_dir, manifest
):
    _, public = signing_keys
    reg = _open(registry_uri, tmp_path)
    version = reg.register(model_dir(), manifest, actor="a")
    key_id = public_key_id(public)
    assert version.manifest.signed_by == key_id
    assert reg.store.exists(f"testing/xray/1/{SIGNATURE_FILE}")
    assert reg.fetch("testing:1", refresh=True).signature == {"status": "signed", "key_id": key_id}
    assert reg.fetch("testing:1").signature == {"status": "signed", "key_id": key_id}  # from the cache


def test_model_replaced_with_its_manifest_checksum_is_refused_even_with_a_clean_cache(
    signing_keys, registry_uri, tmp_path, model_dir, manifest
):
    reg = _open(registry_uri, tmp_path)
    reg.register(model_dir(b"the real model"), manifest, actor="a")
    reg.fetch("testing:1")  # a clean, verified copy in the cache
    _swap_model_and_manifest(reg, b"a much worse model")
    for refresh in (False, True):
        with pytest.raises(SignatureError, match=r"^testing:1 differs from what was signed") as info:
            reg.fetch("testing:1", refresh=refresh)
        assert "changed: manifest.json, model.keras" in str(info.value)
    # The cache still holds the verified model: nothing was replaced by the refused download.
    assert (reg.local_cache / "1" / "model.keras").read_bytes() == b"the real model"


def test_without_signatures_the_same_attack_passes_the_checksums(registry_uri, tmp_path, model_dir, manifest):
    """Negative control: sha256 lists alone protect against corruption, not against tampering."""
    reg = _open(registry_uri, tmp_path)
    reg.register(model_dir(b"the real model"), manifest, actor="a")
    _swap_model_and_manifest(reg, b"a much worse model")
    got = reg.fetch("testing:1", refresh=True)
    assert got.model_path.read_bytes() == b"a much worse model"
    assert got.signature == {"status": "unsigned", "key_id": None}


def test_a_version_re_signed_with_a_foreign_key_is_refused(
    signing_keys, registry_uri, tmp_path, model_dir, manifest
):
    reg = _open(registry_uri, tmp_path)
    src = model_dir(b"the real model")
    reg.register(src, manifest, actor="a")
    stored = _swap_model_and_manifest(reg, b"evil")
    # The attacker signs the altered version with a key of their own, as the registry would.
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "model.keras").write_bytes(b"evil")
    files = {rel: (evil / rel if rel == "model.keras" else src / rel) for rel in stored["files"]}
    generate_key_pair(tmp_path / "attacker.pem", tmp_path / "attacker.pub")
    with staged_folder(files, reg.store.read(MANIFEST)) as folder:
        signature = sign_folder(folder, SigningConfig(tmp_path / "attacker.pem"))
    reg.store.write(f"testing/xray/1/{SIGNATURE_FILE}", signature)
    attacker = public_key_id(tmp_path / "attacker.pub")
    with pytest.raises(
        SignatureError, match=rf"testing:1 is signed by key {attacker[:16]}\.\.\., which is not a trusted"
    ):
        reg.fetch("testing:1", refresh=True)


def test_a_missing_signature_is_refused_where_required_and_allowed_where_not(
    signing_keys, registry_uri, tmp_path, model_dir, manifest, monkeypatch
):
    reg = _open(registry_uri, tmp_path)
    reg.register(model_dir(), manifest, actor="a")
    reg.store.delete(f"testing/xray/1/{SIGNATURE_FILE}")
    with pytest.raises(SignatureError, match=r"testing:1 is not signed and signing is required"):
        reg.fetch("testing:1", refresh=True)
    monkeypatch.setenv("MLOPS_SIGNING_REQUIRED", "false")
    relaxed = _open(registry_uri, tmp_path, cache="other")
    assert relaxed.fetch("testing:1").signature == {"status": "unsigned", "key_id": None}


def test_a_whole_version_copied_over_another_is_refused(
    signing_keys, registry_uri, tmp_path, model_dir, manifest
):
    """Files, manifest and signature of version 1 verify by themselves: the manifest names version 1."""
    reg = _open(registry_uri, tmp_path)
    reg.register(model_dir(b"one"), manifest, actor="a")
    reg.register(model_dir(b"two"), manifest, actor="a")
    for key in reg.store.list("testing/xray/1/"):
        reg.store.write(key.replace("/1/", "/2/"), reg.store.read(key))
    with pytest.raises(
        IntegrityError, match=r"testing:2: its manifest names 'xray' version 1: another version"
    ):
        reg.fetch("testing:2", refresh=True)


def test_registering_with_no_key_where_required_is_refused_and_logged(
    registry_uri, tmp_path, model_dir, manifest, monkeypatch
):
    monkeypatch.setenv("MLOPS_SIGNING_REQUIRED", "true")
    reg = _open(registry_uri, tmp_path)
    reg.store.write("keep", b"the root exists")  # a registry that is there, as in production
    with pytest.raises(SignatureError, match="signing is required but no private key is configured"):
        reg.register(model_dir(), manifest, actor="mallory")
    assert reg.list() == [] and reg.store.list("claims/") == []  # no number was even claimed
    [event] = reg.audit()
    assert (event["action"], event["attempted"], event["actor"]) == ("refuse", "register", "mallory")


def test_a_signing_key_the_verifiers_do_not_trust_is_refused_before_registering(
    signing_keys, registry_uri, tmp_path, model_dir, manifest, monkeypatch
):
    generate_key_pair(tmp_path / "other.pem", tmp_path / "other.pub")
    monkeypatch.setenv("MLOPS_SIGNING_PRIVATE_KEY", str(tmp_path / "other.pem"))
    reg = _open(registry_uri, tmp_path)
    with pytest.raises(SignatureError, match=r"is not one of the trusted public keys"):
        reg.register(model_dir(), manifest, actor="a")
    assert reg.store.list("claims/") == []


def test_key_rotation_keeps_old_versions_until_their_key_is_dropped(
    signing_keys, registry_uri, tmp_path, model_dir, manifest, monkeypatch
):
    _, old_public = signing_keys
    reg = _open(registry_uri, tmp_path)
    reg.register(model_dir(), manifest, actor="a")
    generate_key_pair(tmp_path / "new.pem", tmp_path / "new.pub")
    monkeypatch.setenv("MLOPS_SIGNING_PRIVATE_KEY", str(tmp_path / "new.pem"))
    monkeypatch.setenv("MLOPS_SIGNING_PUBLIC_KEYS", f"{tmp_path / 'new.pub'},{old_public}")
    both = _open(registry_uri, tmp_path)
    both.register(model_dir(), manifest, actor="a")
    assert both.fetch("testing:1").signature["key_id"] == public_key_id(old_public)
    assert both.fetch("testing:2").signature["key_id"] == public_key_id(tmp_path / "new.pub")
    monkeypatch.setenv("MLOPS_SIGNING_PUBLIC_KEYS", str(tmp_path / "new.pub"))
    rotated = _open(registry_uri, tmp_path)
    with pytest.raises(SignatureError, match="not a trusted key"):
        rotated.fetch("testing:1")  # the cached copy was verified with a key no longer trusted
    assert rotated.fetch("testing:2").version == 2


def test_keys_init_writes_a_pair_the_registry_uses_by_default(cli, settings, model_dir, manifest):
    from registry import open_registry

    result = cli("keys", "init")
    assert result.code == 0, result.err
    private = settings.keys_dir / "signing-key.pem"
    assert private.stat().st_mode & 0o777 == 0o600
    again = cli("keys", "init")
    assert again.code == 1 and "already exists" in again.err
    assert cli("keys", "init", "--if-missing").code == 0
    reg = open_registry(settings)
    version = reg.register(model_dir(), manifest, actor="a")
    assert version.manifest.signed_by == public_key_id(settings.keys_dir / "signing-key.pub")
    assert reg.fetch("testing:1").signature["status"] == "signed"
