"""Fetch a version into a local cache, verifying every file's sha256 and the version's signature.

A download lands in a fresh folder: each file is checked against the stored manifest, the manifest
itself (its exact stored bytes) goes beside them, and the whole folder is checked against the
version's signature (registry.signing) before one rename moves it into place. The cache then carries
a stamp: per file (sha256, size, mtime_ns) written right after its hash was checked, the sha256 of
the manifest and signature it was verified against, and what the verification established. A later
fetch trusts the cache only while the store's manifest and signature are still those bytes, each
file's sha256 is still the manifest's (re-hashed at every use: a file swapped for another of the same
size and mtime is caught and refused: it was hidden on purpose), and the key that verified it is still
trusted; anything else is downloaded and verified again. `refresh=True` always re-downloads: it
checks the registry's copy, not the cache's (test-model, promote and deploy do that before they act).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.safe_paths import name_problem, safe_join
from registry.checksums import sha256_file
from registry.errors import IntegrityError, NotFoundError, SignatureError
from registry.manifest import FileEntry, Manifest, ManifestError
from registry.signing import (
    MANIFEST_FILE,
    SIGNATURE_FILE,
    SigningConfig,
    Verified,
    public_key_id,
    verify_folder,
)
from registry.version import LocalModel, ModelVersion

if TYPE_CHECKING:
    from registry.core import Registry

STAMP = ".verified.json"


def _sha(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def _cache_dir(reg: Registry, version: int) -> Path:
    # testing:N and production:N hold the same bytes, so one cache entry per version number.
    return reg.local_cache / str(version)


def _still_trusted(verified: dict[str, Any], config: SigningConfig) -> bool:
    """Whether what a past verification established is still enough under the current keys."""
    trusted = {public_key_id(p) for p in config.public_keys} if config.public_keys else set()
    status = verified.get("status")
    if status == "signed":
        return verified.get("key_id") in trusted
    if config.required:
        return False
    return status == "unsigned" or (status == "unverified" and not trusted)


def _stamp_ok(
    folder: Path,
    files: Mapping[str, FileEntry],
    manifest: bytes,
    signature: bytes | None,
    config: SigningConfig,
) -> dict[str, Any] | None:
    """What the cached copy's verification established, or None when the cache cannot be trusted."""
    try:
        stamp = json.loads((folder / STAMP).read_text())
        if stamp["manifest_sha256"] != _sha(manifest) or stamp["signature_sha256"] != _sha(signature):
            return None
        recorded, verified = stamp["files"], stamp["verified"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if set(recorded) != set(files) or not _still_trusted(verified, config):
        return None
    for rel, meta in files.items():
        sha, size, mtime_ns = recorded[rel]
        try:
            st = (folder / rel).stat()
        except OSError:
            return None
        if sha != meta.sha256 or st.st_size != size or st.st_mtime_ns != mtime_ns:
            return None
        # Size and mtime are the caller's to set: only the content's hash says it is the verified file.
        # A file changed while keeping the size and mtime it was verified with was changed to hide it:
        # refuse (the caller audits it) rather than quietly fetch again and serve on.
        if sha256_file(folder / rel) != meta.sha256:
            raise IntegrityError(
                f"the cached {rel} of {folder} fails its sha256 although its size and mtime are the "
                "verified ones: it was swapped after verification; refusing it. Restart with a verified "
                "copy (mlops serve / mlops deploy re-download and verify the registry's copy) and find "
                "who can write the cache"
            )
    return dict(verified)


def _replaceable(
    folder: Path,
    files: Mapping[str, FileEntry],
    manifest: bytes,
    signature: bytes | None,
    config: SigningConfig,
) -> dict[str, Any] | None:
    """_stamp_ok for a fresh, verified download about to replace the cache: a swapped copy is replaced."""
    try:
        return _stamp_ok(folder, files, manifest, signature, config)
    except IntegrityError:
        return None


def _check(path: Path, rel: str, meta: FileEntry, ref: str, digest: str | None = None) -> None:
    """Refuse a file whose size or sha256 (computed here unless given) differs from the manifest."""
    size = path.stat().st_size
    if size != meta.size:
        raise IntegrityError(
            f"{ref}: file {rel} is {size} bytes, manifest says {meta.size}: "
            "the registry copy is corrupt or tampered; do not use it"
        )
    digest = digest or sha256_file(path)
    if digest != meta.sha256:
        raise IntegrityError(
            f"{ref}: file {rel} has sha256 {digest[:16]}..., manifest says {meta.sha256[:16]}...: "
            "the registry copy is corrupt or tampered; do not use it"
        )


def _write_manifest(folder: Path, manifest: Manifest) -> None:
    stored = manifest.to_dict(annotations=False)
    (folder / MANIFEST_FILE).write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")


def _download(
    reg: Registry, mv: ModelVersion, stored: Manifest, raw: bytes, signature: bytes | None, target: Path
) -> Verified:
    """Download, verify files and signature in a fresh folder, then move it into place in one rename."""
    files = stored.files
    config = reg.policy.signing
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex}"
    try:
        recorded = {}
        prefix = f"{mv.area}/{reg.name}/{mv.version}/"
        for rel, meta in files.items():
            path = safe_join(tmp, rel, f"{mv.ref}: file")
            try:
                digest = reg.store.get_file(prefix + rel, path)
            except FileNotFoundError:
                raise IntegrityError(
                    f"{mv.ref}: file {rel} listed in the manifest is missing from {reg.uri}; restore it"
                ) from None
            _check(path, rel, meta, mv.ref, digest)
            st = path.stat()
            recorded[rel] = [meta.sha256, st.st_size, st.st_mtime_ns]
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / MANIFEST_FILE).write_bytes(raw)  # the signed bytes, exactly as stored
        verified = verify_folder(tmp, signature, config, mv.ref)
        stamp = {
            "files": recorded,
            "manifest_sha256": _sha(raw),
            "signature_sha256": _sha(signature),
            "verified": verified.to_dict(),
        }
        (tmp / STAMP).write_text(json.dumps(stamp))
        if _replaceable(target, files, raw, signature, config) is not None:
            return verified  # a concurrent fetch finished first: never pull a good copy from its users
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)  # a damaged or outdated copy: replace it
        try:
            os.rename(tmp, target)
        except OSError:
            if _replaceable(target, files, raw, signature, config) is None:  # a concurrent fetch won
                raise
        return verified
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_stored(reg: Registry, mv: ModelVersion) -> tuple[bytes, Manifest, bytes | None]:
    """The version's manifest (stored bytes and parsed) and signature, checked to name this version."""
    prefix = f"{mv.area}/{reg.name}/{mv.version}/"
    raw = reg.store.read(prefix + MANIFEST_FILE)
    if raw is None:
        raise NotFoundError(f"{mv.ref} has no manifest in {reg.uri}")
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
            raise ValueError(data)
        stored = Manifest.from_dict(data)
    except ValueError:
        raise IntegrityError(f"{mv.ref}: its manifest is not a registry manifest; restore it") from None
    except ManifestError as exc:
        raise IntegrityError(f"{mv.ref}: its manifest is damaged ({exc}); restore it") from None
    for rel in stored.files:  # each becomes a file of the version cache (and of --dest): none may leave it
        if (why := name_problem(rel)) is not None:
            raise IntegrityError(
                f"{mv.ref}: its manifest lists a file {rel!r} that is not a safe relative name ({why}): "
                "the registry copy is tampered; do not use it"
            )
    if stored.model_file and stored.model_file not in stored.files:
        raise IntegrityError(
            f"{mv.ref}: its model file {stored.model_file!r} is not among its listed files; do not use it"
        )
    if stored.name != reg.name or stored.version != mv.version:
        # A whole version (files, manifest, signature) copied over another one verifies by itself.
        raise IntegrityError(
            f"{mv.ref}: its manifest names {stored.name!r} version {stored.version!r}: "
            "another version was copied over it; do not use it"
        )
    return raw, stored, reg.store.read(prefix + SIGNATURE_FILE)


def fetch_version(reg: Registry, mv: ModelVersion, dest: Path | None, refresh: bool = False) -> LocalModel:
    """Fetch a registry version (verified, cached) and optionally copy it to dest."""
    raw, stored, signature = read_stored(reg, mv)
    folder = _cache_dir(reg, mv.version)
    verified = None if refresh else _stamp_ok(folder, stored.files, raw, signature, reg.policy.signing)
    if verified is None:
        verified = _download(reg, mv, stored, raw, signature, folder).to_dict()
    manifest = reg.decorate(stored, mv.area, mv.version)
    if dest is not None:
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        for rel in stored.files:
            target = safe_join(dest, rel, f"{mv.ref}: file")  # no symlink already in dest leads out
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / rel, target)
        _write_manifest(dest, manifest)  # with this ref's area (the cache is shared by both areas)
        folder = dest
    from registry.chain import manifest_digest

    digest = manifest_digest(stored.files, raw)
    return LocalModel(folder, folder / stored.model_file, manifest, mv.version, verified, digest)


def verify_local(mv: ModelVersion, dest: Path | None, config: SigningConfig) -> LocalModel:
    """A plain model file: verify it against a sibling manifest when that lists it."""
    path = Path(mv.uri.removeprefix("file://"))
    if not path.is_file():
        raise NotFoundError(f"model file {path} does not exist")
    if config.required:
        raise SignatureError(
            f"{path} is a local file and signing is required (signing.required): "
            "use a signed registry version (e.g. production:current)"
        )
    manifest = mv.manifest
    meta = manifest.files.get(path.name)
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
    meta = mv.manifest.files.get(rel)
    if meta is None:
        raise NotFoundError(f"{mv.ref} has no file {rel} (its manifest does not list it)")
    data = reg.store.read(f"{mv.area}/{reg.name}/{mv.version}/{rel}")
    if data is None:
        raise IntegrityError(
            f"{mv.ref}: file {rel} listed in the manifest is missing from {reg.uri}; restore it"
        )
    if len(data) != meta.size or hashlib.sha256(data).hexdigest() != meta.sha256:
        raise IntegrityError(
            f"{mv.ref}: file {rel} does not match the sha256 and size in its manifest: "
            "the registry copy is corrupt or tampered; do not use it"
        )
    return data
