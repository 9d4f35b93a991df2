"""Find the model to serve through the registry: a ref (fetched, sha256-verified, cached) or a local file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import MlopsError
from core.settings import Settings


def fetch_model(settings: Settings, ref: str, refresh: bool = False) -> tuple[Path, dict[str, Any]]:
    """Resolve REF to (local model file, manifest), every file's sha256 and the signature verified.

    REF is a registry ref (production:current, testing:latest, testing:7, ...) or a plain path to
    a .keras file with its manifest.json beside it (docs/manifest.md: classes, preprocessing).
    refresh: verify the registry's copy, not a cached one (`mlops serve` does, once, before gunicorn
    starts; its workers then load that verified copy from the cache).
    """
    from registry import open_registry

    if not ref:
        raise MlopsError("no model to serve: pass --model REF or set MLOPS_MODEL_REF")
    registry = open_registry(settings)
    fetched = registry.fetch(ref, refresh=refresh)
    verify_trusted(registry, ref, fetched)
    manifest = dict(fetched.manifest)
    if not manifest.get("classes") or not manifest.get("preprocessing"):
        raise MlopsError(
            f"model {ref} has no manifest with 'classes' and 'preprocessing' (docs/manifest.md); "
            "a local model file needs its manifest.json beside it"
        )
    return Path(fetched.model_path), manifest


def verify_trusted(registry: Any, ref: str, fetched: Any) -> None:
    """Under a trust policy, refuse (audited) a version whose signed chain does not verify.

    Runs in `mlops serve` before gunicorn starts and in every worker as it loads the model, so a
    worker (re)started after the pointer or the cache was tampered with refuses instead of serving.
    """
    from core.actor import default_actor
    from registry.chain import check_trust

    check_trust(registry, ref, fetched, default_actor(), "serve")
