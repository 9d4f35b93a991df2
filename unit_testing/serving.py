"""Load a registry version exactly the way the API serves it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from model_api.bundle import ModelBundle
    from registry.manifest import Manifest


def load_served_model(model_path: Path, manifest: Manifest) -> ModelBundle:
    """model_api's compiled, warmed ModelBundle: the suite tests the serving code, not a copy of it."""
    from model_api.bundle import load_bundle

    return load_bundle(model_path, manifest)
