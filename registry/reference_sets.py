"""Locked reference sets: curated, versioned evaluation images kept apart from pushed data.

Layout: `reference/<model>/<N>/files/<class>/<file>` and `reference/<model>/<N>/manifest.json`
(written last, create-only: a set exists when its manifest does). Nothing rewrites or deletes a set;
a new curation is a new N. Every file is fetched by its recorded sha256, so a changed byte is an
IntegrityError, and the manifest's fingerprint names the content (training.data's fingerprint).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from registry.errors import IntegrityError, NotFoundError, RegistryError
from registry.store import ObjectExists

_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._+-]{0,127}$")  # one class or file name: no '/', no '..'


@dataclass(frozen=True)
class ReferenceFile:
    """One image of a reference set: where it lies under files/, its class and sha256."""

    path: str  # "<class>/<sha256 prefix><suffix>": stored names never come from outside
    label: str
    sha256: str
    source_path: str = ""  # where it was in the data given (shown, never used as a path)


def _check_path(path: str) -> None:
    parts = path.split("/")
    if len(parts) != 2 or not all(_PART.match(p) and p not in (".", "..") for p in parts):
        raise RegistryError(f"reference file {path!r} is not <class>/<file> with plain names; rename it")


class ReferenceSets:
    """The reference sets of one model in a registry's store."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self.store = registry.store
        self.prefix = f"reference/{registry.name}/"

    def versions(self) -> list[int]:
        """Registered set numbers, ascending."""
        numbers: list[int] = self.store.numbered_with(self.prefix, "manifest.json")
        return numbers

    def manifest(self, number: int) -> dict[str, Any]:
        """The stored manifest of set NUMBER (NotFoundError when there is none)."""
        data = self.store.read(f"{self.prefix}{number}/manifest.json")
        if data is None:
            have = ", ".join(map(str, self.versions())) or "none"
            raise NotFoundError(
                f"reference set {number} of {self.registry.name} does not exist (have: {have})"
            )
        manifest: dict[str, Any] = json.loads(data)
        return manifest

    def register(
        self, files: list[tuple[ReferenceFile, Path]], fingerprint: str, source: dict[str, Any], actor: str
    ) -> dict[str, Any]:
        """Store FILES (entry, local path) as the next set; its manifest is written create-only, last."""
        if not files:
            raise RegistryError("a reference set needs images; the data given has none")
        for entry, _ in files:
            _check_path(entry.path)
        self.registry.check_writable(actor)
        number = (self.versions() or [0])[-1] + 1
        while True:  # claim the number create-only: two writers never share a set
            try:
                self.store.write(f"{self.prefix}{number}/claim.json", b"{}", create_only=True)
                break
            except ObjectExists:
                number += 1
        base = f"{self.prefix}{number}/files/"
        for entry, local in files:
            if hashlib.sha256(local.read_bytes()).hexdigest() != entry.sha256:
                raise IntegrityError(f"{local} changed while the reference set was written; run it again")
            self.store.put_file(base + entry.path, local)
        manifest = {
            "model": self.registry.name,
            "version": number,
            "fingerprint": fingerprint,
            "source": source,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "registered_by": actor,
            "class_counts": _counts(files),
            "files": [
                {"path": e.path, "label": e.label, "sha256": e.sha256, "source_path": e.source_path}
                for e, _ in files
            ],
        }
        self.store.write(
            f"{self.prefix}{number}/manifest.json",
            json.dumps(manifest, indent=1, sort_keys=True).encode(),
            create_only=True,
        )
        self.registry.record_event(
            "reference_set", actor, f"reference set {number}", version=number, fingerprint=fingerprint
        )
        return manifest

    def fetch(self, number: int) -> tuple[dict[str, Any], list[tuple[Path, str]]]:
        """Set NUMBER's manifest and its (local file, label) pairs, every file checked by sha256."""
        manifest = self.manifest(number)
        root = self.registry.cache_dir / "reference" / self.registry.name / str(number)
        out = []
        for row in manifest["files"]:
            _check_path(row["path"])
            local = root / row["path"]
            if not (local.is_file() and hashlib.sha256(local.read_bytes()).hexdigest() == row["sha256"]):
                local.parent.mkdir(parents=True, exist_ok=True)
                got = self.store.get_file(f"{self.prefix}{number}/files/{row['path']}", local)
                if got != row["sha256"]:
                    local.unlink(missing_ok=True)
                    raise IntegrityError(
                        f"reference set {number}: {row['path']} has sha256 {got[:12]}, "
                        f"its manifest says {row['sha256'][:12]}; the set was tampered with"
                    )
            out.append((local, row["label"]))
        return manifest, out


def _counts(files: list[tuple[ReferenceFile, Path]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry, _ in files:
        counts[entry.label] = counts.get(entry.label, 0) + 1
    return dict(sorted(counts.items()))
