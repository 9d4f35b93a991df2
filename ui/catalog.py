"""What the pages show about versions: the cached listing, stages, test results, signatures.

Versions come from `Registry.list` (the listing `mlops registry list` uses: one listing call, with
summaries as object metadata on GCS). A page reads at most its own rows' manifests (kept in memory:
manifests never change) and the newest `tests` annotation of each, and shows the same summary fields
(`registry.version.summarize`), so its cost follows the page size, not the registry's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from registry import ModelVersion, Registry
from registry.manifest import Manifest
from registry.version import summarize


@dataclass(frozen=True)
class Row:
    """One line of the versions table."""

    version: int
    ref: str
    created_at: str | None
    registered_by: str | None
    accuracy: float | None
    gate_passed: bool | None
    stage: str
    tests: dict[str, Any] | None
    signature: str


@dataclass(frozen=True)
class Page:
    """One page of the versions table, newest first."""

    area: str
    rows: list[Row]
    number: int
    pages: int
    total: int
    pointer: dict[str, Any]


def stage(pointer: dict[str, Any], version: int) -> str:
    """Where a version stands: production current / previous / earlier, or testing only."""
    if pointer.get("current") == version:
        return "production (current)"
    if pointer.get("previous") == version:
        return "production (previous)"
    if version in (pointer.get("stack") or []):
        return "production (rollback target)"
    promoted = {e.get("version") for e in pointer.get("history") or [] if e.get("action") == "promote"}
    return "was in production" if version in promoted else "testing"


def signature_state(manifest: Manifest) -> str:
    """What the manifest says about signing: 'unsigned' when it has no signature entry.

    `signed_by` is the key id the registry records when it signs a version (model.sig); every
    consumer (promote, test-model, deploy, the API) verifies it, the browser only shows it.
    """
    if manifest.signed_by:
        return f"signed, key {manifest.signed_by[:16]}"
    signature = manifest.extra.get("signature")  # not a schema field: what older writers recorded
    if not signature:
        return "unsigned"
    if isinstance(signature, dict) and "verified" in signature:
        return "signed, verified" if signature["verified"] else "signed, NOT verified"
    return "signed"


class Catalog:
    """The registry seen by the pages, with the in-memory manifest cache."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._manifests: dict[int, Manifest] = {}

    def manifests(self, versions: list[ModelVersion]) -> dict[int, Manifest]:
        """Stored manifests (no annotations) by version number, read once per process."""
        missing = [v for v in versions if v.version not in self._manifests]
        for v, manifest in zip(missing, self.registry.manifests(missing), strict=True):
            self._manifests[v.version] = manifest
        return {v.version: self._manifests[v.version] for v in versions}

    def page(self, area: str, number: int, size: int) -> Page:
        """Page NUMBER (1-based) of an area's versions, newest first."""
        versions = self.registry.list(area)
        pointer = self.registry.pointer()
        pages = max(1, math.ceil(len(versions) / size))
        number = min(max(1, number), pages)
        newest_first = versions[::-1]
        chosen = newest_first[(number - 1) * size : number * size]
        manifests = self.manifests(chosen)
        # The fields `registry list` shows, from the same function that fills its cache.
        summaries = [summarize(manifests[v.version]) for v in chosen]
        tests = self.registry.latest_annotations([v.version for v in chosen], "tests")
        rows = [
            Row(
                version=v.version,
                ref=v.ref,
                created_at=s.get("created_at"),
                registered_by=s.get("registered_by"),
                accuracy=s.get("accuracy"),
                gate_passed=s.get("gate_passed"),
                stage=stage(pointer, v.version),
                tests=tests.get(v.version),
                signature=signature_state(manifests[v.version]),
            )
            for v, s in zip(chosen, summaries, strict=True)
        ]
        return Page(area, rows, number, pages, len(versions), pointer)

    def version(self, number: int) -> tuple[ModelVersion, Manifest]:
        """testing:N with its manifest (annotations included, read fresh) and the production pointer."""
        mv = self.registry.resolve(f"testing:{number}")
        return mv, mv.manifest
