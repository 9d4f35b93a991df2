"""Find the model to serve through the registry: a ref (fetched, sha256-verified, cached) or a local file."""

from __future__ import annotations

from pathlib import Path

from core.errors import MlopsError
from core.settings import Settings
from registry.manifest import Manifest


def fetch_model(settings: Settings, ref: str, refresh: bool = False) -> tuple[Path, Manifest]:
    """Resolve REF to (local model file, manifest), every file's sha256 and the signature verified.

    REF is a registry ref (production:current, testing:latest, testing:7, ...) or a plain path to
    a .keras file with its manifest.json beside it (docs/manifest.md: classes, preprocessing).
    refresh: verify the registry's copy, not a cached one (`mlops serve` does, once, before gunicorn
    starts; its workers then load that verified copy from the cache).
    """
    from registry import open_registry

    if not ref:
        raise MlopsError("no model to serve: pass --model REF or set MLOPS_MODEL_REF")
    fetched = open_registry(settings).fetch(ref, refresh=refresh)
    manifest = fetched.manifest
    if not manifest.classes or manifest.preprocessing is None:
        raise MlopsError(
            f"model {ref} has no manifest with 'classes' and 'preprocessing' (docs/manifest.md); "
            "a local model file needs its manifest.json beside it"
        )
    return Path(fetched.model_path), manifest
