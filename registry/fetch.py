"""Fetch a version into a local cache, verifying every file's sha256 against its manifest.

A cached copy carries a stamp of (sha256, size, mtime_ns) per file written right after its
hash was checked; a later fetch trusts a file whose size and mtime still match the stamp and
re-downloads (and re-verifies) anything else, so a cache hit costs a few stat calls.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.checksums import sha256_file
from registry.errors import IntegrityError, NotFoundError
from registry.version import LocalModel, ModelVersion

if TYPE_CHECKING:
    from registry.core import Registry

STAMP = ".verified.json"


def _cache_dir(reg: Registry, version: int) -> Path:
    # testing:N and production:N hold the same bytes, so one cache entry per version number.
    return reg.local_cache / str(version)


def _stamp_ok(folder: Path, files: dict[str, Any]) -> bool:
    try:
        stamp = json.loads((folder / STAMP).read_text())
    except (OSError, ValueError):
        return False
    if set(stamp) != set(files):
        return False
    for rel, meta in files.items():
        sha, size, mtime_ns = stamp[rel]
        try:
            st = (folder / rel).stat()
        except OSError:
            return False
        if sha != meta["sha256"] or st.st_size != size or st.st_mtime_ns != mtime_ns:
            return False
    return True


def _check(path: Path, rel: str, meta: dict[str, Any], ref: str, digest: str | None = None) -> None:
    """Refuse a file whose size or sha256 (computed here unless given) differs from the manifest."""
    size = path.stat().st_size
    if size != meta["size"]:
        raise IntegrityError(
            f"{ref}: file {rel} is {size} bytes, manifest says {meta['size']}: "
            "the registry copy is corrupt or tampered; do not use it"
        )
    digest = digest or sha256_file(path)
    if digest != meta["sha256"]:
        raise IntegrityError(
            f"{ref}: file {rel} has sha256 {digest[:16]}..., manifest says {meta['sha256'][:16]}...: "
            "the registry copy is corrupt or tampered; do not use it"
        )


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    stored = {k: v for k, v in manifest.items() if k != "annotations"}
    (folder / "manifest.json").write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")


def _download(reg: Registry, mv: ModelVersion, manifest: dict[str, Any], target: Path) -> None:
    """Download and verify into a fresh folder, then move it into place in one rename."""
    files = manifest["files"]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex}"
    try:
        stamp = {}
        prefix = f"{mv.area}/{reg.name}/{mv.version}/"
        for rel, meta in files.items():
            path = tmp / rel
            try:
                digest = reg.store.get_file(prefix + rel, path)
            except FileNotFoundError:
                raise IntegrityError(
                    f"{mv.ref}: file {rel} listed in the manifest is missing from {reg.uri}; restore it"
                ) from None
            _check(path, rel, meta, mv.ref, digest)
            st = path.stat()
            stamp[rel] = [meta["sha256"], st.st_size, st.st_mtime_ns]
        _write_manifest(tmp, manifest)
        (tmp / STAMP).write_text(json.dumps(stamp))
        if _stamp_ok(target, files):
            return  # a concurrent fetch finished first: never pull a good copy from under its users
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)  # a damaged copy: replace it
        try:
            os.rename(tmp, target)
        except OSError:
            if not _stamp_ok(target, files):  # a concurrent fetch won the rename with a good copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch_version(reg: Registry, mv: ModelVersion, dest: Path | None) -> LocalModel:
    """Fetch a registry version (verified, cached) and optionally copy it to dest."""
    manifest = mv.manifest
    folder = _cache_dir(reg, mv.version)
    if not _stamp_ok(folder, manifest["files"]):
        _download(reg, mv, manifest, folder)
    if dest is not None:
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        for rel in manifest["files"]:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / rel, dest / rel)
        _write_manifest(dest, manifest)  # with this ref's area (the cache is shared by both areas)
        folder = dest
    return LocalModel(folder, folder / manifest["model_file"], manifest, mv.version)


def verify_local(mv: ModelVersion, dest: Path | None) -> LocalModel:
    """A plain model file: verify it against a sibling manifest when that lists it."""
    path = Path(mv.uri.removeprefix("file://"))
    if not path.is_file():
        raise NotFoundError(f"model file {path} does not exist")
    manifest = mv.manifest
    meta = manifest.get("files", {}).get(path.name)
    if meta:
        _check(path, path.name, meta, str(path))
    if dest is not None:
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest / path.name)
        path = dest / path.name
    return LocalModel(path.parent, path, manifest, 0)


def read_verified(reg: Registry, mv: ModelVersion, rel: str) -> bytes:
    """The bytes of one file of a version, checked against the size and sha256 in its manifest."""
    meta = mv.manifest.get("files", {}).get(rel)
    if meta is None:
        raise NotFoundError(f"{mv.ref} has no file {rel} (its manifest does not list it)")
    data = reg.store.read(f"{mv.area}/{reg.name}/{mv.version}/{rel}")
    if data is None:
        raise IntegrityError(
            f"{mv.ref}: file {rel} listed in the manifest is missing from {reg.uri}; restore it"
        )
    if len(data) != meta["size"] or hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise IntegrityError(
            f"{mv.ref}: file {rel} does not match the sha256 and size in its manifest: "
            "the registry copy is corrupt or tampered; do not use it"
        )
    return data
