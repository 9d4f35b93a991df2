"""Find the model to serve: a registry ref (fetched and verified) or a plain local model file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlops.errors import MlopsError
from mlops.settings import Settings


def fetch_model(settings: Settings, ref: str) -> tuple[Path, dict[str, Any]]:
    """Resolve REF to (local model file, manifest); registry refs are fetched with sha256 checks."""
    if not ref:
        raise MlopsError("no model to serve: pass --model REF or set MLOPS_MODEL_REF")
    local = Path(ref).expanduser()
    if ":" not in ref or local.exists():
        return _local_model(local)
    try:
        from registry import open_registry  # the registry verifies every file's sha256 on fetch
    except ImportError:
        raise MlopsError(f"cannot resolve {ref!r}: the registry package is not installed here") from None
    fetched = open_registry(settings).fetch(ref)
    return Path(fetched.model_path), dict(fetched.manifest)


def _local_model(path: Path) -> tuple[Path, dict[str, Any]]:
    """A model file with its manifest.json beside it (a registry version folder has both)."""
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise MlopsError(
            f"model {path} does not exist; pass a registry ref (testing:latest, production:current) "
            "or the path of a .keras file"
        )
    manifest_path = path.parent / "manifest.json"
    if not manifest_path.is_file():
        raise MlopsError(f"no manifest.json beside {path}; the API needs its classes and preprocessing")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MlopsError(f"{manifest_path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise MlopsError(f"{manifest_path} must hold a JSON object")
    manifest.setdefault("area", "local")
    return path, manifest
