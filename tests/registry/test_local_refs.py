"""Plain local paths as refs, and a registry that does not exist."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from manifests import lineage

from registry import IntegrityError, NotFoundError, Registry, RegistryError


def test_plain_model_file_is_a_ref(tmp_path: Path):
    model = tmp_path / "m" / "model.keras"
    model.parent.mkdir()
    model.write_bytes(b"weights")
    reg = Registry.open(f"file://{tmp_path / 'reg'}", "xray", cache_dir=tmp_path / "c")
    mv = reg.resolve(str(model))
    assert (mv.area, mv.version) == ("local", 0)
    got = reg.fetch(str(model))
    assert got.model_path == model.absolute()
    assert got.version == 0


def test_plain_model_file_is_verified_against_sibling_manifest(tmp_path: Path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.keras").write_bytes(b"weights")
    files = {"model.keras": {"sha256": "0" * 64, "size": 7}}
    (folder / "manifest.json").write_text(json.dumps({"name": "xray", "files": files}))
    reg = Registry.open(f"file://{tmp_path / 'reg'}", "xray")
    with pytest.raises(IntegrityError, match=r"model\.keras"):
        reg.fetch(str(folder / "model.keras"))


@pytest.mark.parametrize("call", ["list", "resolve", "audit", "rollback"])
def test_missing_registry_is_a_clear_error_and_not_created(tmp_path: Path, call: str):
    root = tmp_path / "nope"
    reg = Registry.open(f"file://{root}", "xray")
    calls = {
        "list": lambda: reg.list(),
        "resolve": lambda: reg.resolve("testing:latest"),
        "audit": lambda: reg.audit(),
        "rollback": lambda: reg.rollback(actor="x"),
    }
    with pytest.raises(NotFoundError, match="does not exist"):
        calls[call]()
    assert not root.exists()


@pytest.mark.parametrize("uri", ["s3://bucket", "file://"])
def test_unsupported_uri(uri: str):
    with pytest.raises(RegistryError, match="uri"):
        Registry.open(uri, "xray")


def test_bad_model_name():
    with pytest.raises(RegistryError, match="model name"):
        Registry.open("file:///tmp/x", "../etc")


def test_open_registry_uses_settings(settings, tmp_path: Path):
    from registry import open_registry

    reg = open_registry(settings)
    assert reg.name == settings.registry.model_name
    assert reg.uri == settings.registry_uri
    assert reg.cache_dir == settings.home / "cache"


def test_register_needs_the_model_file(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "report.html").write_text("x")
    reg = Registry.open(f"file://{tmp_path / 'reg'}", "xray")
    with pytest.raises(RegistryError, match=r"model file 'model\.keras' is missing"):
        reg.register(src, lineage(), actor="a")
    assert not (tmp_path / "reg").exists()


def test_local_promotion_hard_links_instead_of_copying(tmp_path: Path, promote):
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.keras").write_bytes(b"w" * 4096)
    root = tmp_path / "reg"
    reg = Registry.open(f"file://{root}", "xray", cache_dir=tmp_path / "c")
    reg.register(src, lineage(), actor="a")
    promote(reg, "testing:1")
    testing, production = root / "testing/xray/1/model.keras", root / "production/xray/1/model.keras"
    assert testing.stat().st_ino == production.stat().st_ino
    assert testing.read_bytes() == production.read_bytes()
