"""Golden examples kept with registered versions (written by training/golden.py), read back verified."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from training.golden import INDEX

if TYPE_CHECKING:
    from registry import Registry
    from registry.manifest import Manifest


@dataclass(frozen=True)
class GoldenExample:
    """One held-out image and its true label, from the version `owner`'s test split."""

    owner: str
    file: str
    label: str
    data: bytes


def own_golden(version_dir: Path, ref: str) -> list[GoldenExample] | None:
    """The examples in a fetched (so sha256-verified) version folder; None when it kept none."""
    index = version_dir / INDEX
    if not index.is_file():
        return None
    examples = json.loads(index.read_text())["examples"]
    return [
        GoldenExample(ref, e["file"], e["label"], (version_dir / e["file"]).read_bytes()) for e in examples
    ]


def earlier_golden(
    registry: Registry, manifest: Manifest, count: int
) -> tuple[list[GoldenExample], list[str]]:
    """The examples of the `count` newest APPROVED versions (promoted to production at some point) older
    than this one with the same classes: a candidate is never judged by a version nobody approved.

    Returns them with a note for each earlier version passed over (unapproved, other classes, none kept).
    """
    version = manifest.version or 0
    classes = set(manifest.classes)
    approved = registry.approved_versions()
    older = [v for v in registry.list("testing") if v.version < version]
    unapproved = [v.ref for v in older if v.version not in approved]
    earlier = [v for v in older if v.version in approved][-count:] if count > 0 else []
    examples: list[GoldenExample] = []
    notes: list[str] = []
    if unapproved:
        notes.append(f"never approved, so not used: {', '.join(unapproved[-5:])}")
    for mv in earlier:
        if set(mv.manifest.classes) != classes:
            notes.append(f"{mv.ref} has other classes")
            continue
        if INDEX not in mv.manifest.files:
            notes.append(f"{mv.ref} kept no golden examples")
            continue
        index = json.loads(registry.read_file(mv.ref, INDEX))
        examples += [
            GoldenExample(mv.ref, e["file"], e["label"], registry.read_file(mv.ref, e["file"]))
            for e in index["examples"]
        ]
    return examples, notes
