"""What a rollout serves: a registry ref pinned to the exact version (shared by local and k8s)."""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import Settings


@dataclass(frozen=True)
class Model:
    """What to serve: the exact ref the server loads, and the version it must report."""

    ref: str
    name: str
    version: int | None


def resolve_model(settings: Settings, ref: str) -> Model:
    """The exact version a ref names now, pinned (production:current → production:7)."""
    from registry import open_registry

    found = open_registry(settings).resolve(ref)
    if found.area == "local":
        return Model(ref, found.name, found.manifest.get("version") or None)
    return Model(f"{found.area}:{found.version}", found.name, found.version)
