"""The locked reference set in force: register one from a dataset, fetch it, score models on it.

Which set is in force is `[gate] reference_set`: "latest" (the newest registered), a number, or "none".
The data pipeline never writes here: only `mlops reference set` (and the demo's first run) does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import UsageError
from core.settings import Settings
from registry.reference_sets import ReferenceFile, ReferenceSets
from training.data import scan_snapshot
from training.sources import resolve_source


def reference_sets(settings: Settings) -> ReferenceSets:
    from registry import open_registry

    return ReferenceSets(open_registry(settings))


def register_reference(settings: Settings, data_uri: str, actor: str) -> dict[str, Any]:
    """Check and hash the images at DATA_URI (folder, gs://, git+) and store them as the next set."""
    snapshot = resolve_source(data_uri, settings.cache_dir, settings.sources.git_timeout_s)
    dataset = scan_snapshot(snapshot)
    files = [
        (
            ReferenceFile(
                f"{i.label}/{i.sha256[:24]}{Path(i.path).suffix.lower()}", i.label, i.sha256, i.path
            ),
            dataset.path_of(i),
        )
        for i in dataset.items
    ]
    return reference_sets(settings).register(files, dataset.fingerprint, snapshot.lineage(), actor)


def in_force(settings: Settings) -> int | None:
    """The set number `[gate] reference_set` names (None: none in force, or none registered yet)."""
    choice = settings.gate.reference_set.strip().lower()
    if choice in ("none", "off", ""):
        return None
    sets = reference_sets(settings)
    if choice == "latest":
        versions = sets.versions()
        return versions[-1] if versions else None
    if not choice.isdigit() or int(choice) < 1:
        raise UsageError(f"[gate] reference_set must be 'latest', 'none' or a set number, got {choice!r}")
    sets.manifest(int(choice))  # NotFoundError names the sets there are
    return int(choice)


def load_reference(settings: Settings, number: int) -> tuple[dict[str, Any], list[Path], list[str]]:
    """Set NUMBER's manifest, local files (sha256-checked) and labels."""
    manifest, rows = reference_sets(settings).fetch(number)
    return manifest, [path for path, _ in rows], [label for _, label in rows]
