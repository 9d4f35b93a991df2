"""Find the model to serve through the registry: a ref (fetched, sha256-verified, cached) or a local file.

A version refused at load (a file that no longer matches its manifest, a missing or foreign
signature) is a refused decision like a refused promotion: it goes on the audit log (action
`refuse`, attempted `serve`) with who, where, why and which version and digests, before the error.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from typing import Any

from core.actor import default_actor
from core.errors import MlopsError
from core.settings import Settings
from registry.manifest import Manifest


def fetch_model(settings: Settings, ref: str, refresh: bool = False) -> tuple[Path, Manifest]:
    """Resolve REF to (local model file, manifest); see fetch_verified."""
    return fetch_verified(settings, ref, refresh)[:2]


def fetch_verified(settings: Settings, ref: str, refresh: bool = False) -> tuple[Path, Manifest, str]:
    """Resolve REF to (local model file, manifest, version digest), every file and the signature verified.

    REF is a registry ref (production:current, testing:latest, testing:7, ...) or a plain path to
    a .keras file with its manifest.json beside it (docs/manifest.md: classes, preprocessing).
    refresh: verify the registry's copy, not a cached one (`mlops serve` does, once, before gunicorn
    starts; its workers then load that verified copy from the cache).
    """
    from registry import open_registry
    from registry.errors import IntegrityError

    if not ref:
        raise MlopsError("no model to serve: pass --model REF or set MLOPS_MODEL_REF")
    reg = open_registry(settings)
    try:
        fetched = reg.fetch(ref, refresh=refresh)
    except IntegrityError as exc:  # a SignatureError is one too
        _record_refusal(reg, ref, exc)
        raise
    verify_trusted(reg, ref, fetched)
    manifest = fetched.manifest
    if not manifest.classes or manifest.preprocessing is None:
        raise MlopsError(
            f"model {ref} has no manifest with 'classes' and 'preprocessing' (docs/manifest.md); "
            "a local model file needs its manifest.json beside it"
        )
    return Path(fetched.model_path), manifest, str(getattr(fetched, "digest", "") or "")


def _record_refusal(reg: Any, ref: str, exc: Exception) -> None:
    """Put the refused load on the audit log: who, where, why, and what the registry's copy claims."""
    from registry.errors import RegistryError, SignatureError
    from registry.fetch import read_stored

    what: dict[str, Any] = {
        "ref": ref,
        "where": f"{socket.gethostname()} pid {os.getpid()}",
        "check": "signature" if isinstance(exc, SignatureError) else "checksum",
    }
    try:
        mv = reg.resolve(ref)
        what.update(area=mv.area, version=mv.version)
        if mv.area != "local":
            raw, stored, _signature = read_stored(reg, mv)
            what["manifest_sha256"] = hashlib.sha256(raw).hexdigest()
            model = stored.files.get(stored.model_file)
            what["model_sha256"] = model.sha256 if model else None
    except (RegistryError, OSError, AttributeError, TypeError):
        pass  # a manifest too broken to describe: the refusal and its reason still go on record
    reg.record_refusal("serve", default_actor(), str(exc), **what)


def verify_trusted(registry: Any, ref: str, fetched: Any) -> None:
    """Under a trust policy, refuse (audited) a version whose signed chain does not verify.

    Runs in `mlops serve` before gunicorn starts and in every worker as it loads the model, so a
    worker (re)started after the pointer or the cache was tampered with refuses instead of serving.
    """
    from registry.chain import check_trust

    check_trust(registry, ref, fetched, default_actor(), "serve")
