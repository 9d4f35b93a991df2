"""What the registry hands out: a registered version (manifest read lazily) and a fetched model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from registry.manifest import Manifest

ANNOTATION_KINDS = ("tests", "approvals", "deployments")  # always present in a shown manifest
SUMMARY_KEY = "mlops-summary"  # object metadata on a manifest: what `registry list` shows


def summarize(manifest: Manifest) -> dict[str, Any]:
    """The few manifest fields a listing shows."""
    return {
        "created_at": manifest.created_at,
        "registered_by": manifest.registered_by,
        "accuracy": manifest.metrics.accuracy,
        "gate_passed": manifest.gate.passed if manifest.gate is not None else None,
    }


@dataclass(eq=False)
class ModelVersion:
    """One registered version in an area (or a local model file, area "local", version 0)."""

    name: str
    version: int
    area: str
    uri: str
    _load: Callable[[], Manifest] = field(repr=False, default=Manifest)
    _summary: dict[str, Any] | None = field(repr=False, default=None)

    @cached_property
    def manifest(self) -> Manifest:
        """The typed manifest with its annotations merged in (read on first use)."""
        return self._load()

    @property
    def ref(self) -> str:
        """The canonical ref of this version, e.g. `testing:7`."""
        return self.uri.removeprefix("file://") if self.area == "local" else f"{self.area}:{self.version}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModelVersion):
            return NotImplemented
        return (self.name, self.version, self.area, self.uri) == (
            other.name,
            other.version,
            other.area,
            other.uri,
        )

    def __hash__(self) -> int:
        return hash((self.name, self.version, self.area, self.uri))


@dataclass(frozen=True)
class LocalModel:
    """A fetched, verified model on local disk."""

    dir: Path
    model_path: Path
    manifest: Manifest
    version: int
    signature: dict[str, Any] | None = None  # what verification established: status and key_id
    digest: str | None = None  # the version's root digest (registry.attestations.version_digest)
