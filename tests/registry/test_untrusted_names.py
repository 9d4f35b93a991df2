"""A registry someone else can write: a manifest's file list must not reach outside the version cache."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from registry.errors import IntegrityError, RegistryError
from registry.local_store import LocalStore

ESCAPING = "../../../../ESCAPED"


def _files(root: Path) -> dict[str, bytes]:
    found = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def test_a_manifest_listing_a_file_outside_the_version_is_refused(reg, model_dir, manifest, tmp_path):
    mv = reg.register(model_dir(), manifest, actor="ci")
    folder = f"testing/xray/{mv.version}/"
    stored = json.loads(reg.store.read(folder + "manifest.json"))
    payload = b"attacker bytes"
    stored["files"][ESCAPING] = {"sha256": hashlib.sha256(payload).hexdigest(), "size": len(payload)}
    reg.store.write(folder + "manifest.json", json.dumps(stored).encode())
    # The object that name reaches in each store, so an unchecked fetch would find and write it.
    if isinstance(reg.store, LocalStore):
        (reg.store.root / "testing/xray/1" / ESCAPING).resolve().write_bytes(payload)
    else:
        reg.store.bucket.blob(reg.store.prefix + folder + ESCAPING).upload_from_string(payload)
    before = _files(tmp_path)

    with pytest.raises(IntegrityError, match=re.escape(repr(ESCAPING))):
        reg.fetch(mv.ref, dest=tmp_path / "dest")

    assert _files(tmp_path) == before  # nothing downloaded, nothing written beside the cache
    assert not (tmp_path / "dest").exists()


def test_a_model_file_that_is_not_listed_is_refused(reg, model_dir, manifest):
    mv = reg.register(model_dir(), manifest, actor="ci")
    folder = f"testing/xray/{mv.version}/"
    stored = json.loads(reg.store.read(folder + "manifest.json"))
    stored["model_file"] = "../../../../etc/passwd"
    reg.store.write(folder + "manifest.json", json.dumps(stored).encode())
    with pytest.raises(IntegrityError, match="is not among its listed files"):
        reg.fetch(mv.ref)


def test_the_local_store_refuses_keys_that_climb_out_of_its_root(tmp_path):
    store = LocalStore(tmp_path / "registry")
    for key in ("../outside", "a/../../outside", "/etc/passwd", "a\\..\\b", "a\x00b"):
        with pytest.raises(RegistryError, match="is not a safe path"):
            store.write(key, b"x")
    assert not (tmp_path / "outside").exists()
    assert _files(tmp_path) == {}
