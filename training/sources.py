"""Where a dataset comes from: a folder, a gs:// prefix or a git repository at a revision → a local snapshot.

`--data` goes through here once: the source is resolved to a local folder plus the facts that name
exactly what was read (the commit, or the object generations), and only then scanned, split and
trained on. The lineage of every version records `Snapshot.lineage()`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import git_source
from core.errors import MlopsError, UsageError
from core.safe_paths import control_character

KINDS = ("folder", "gcs", "git")


@dataclass(frozen=True)
class Snapshot:
    """A dataset source resolved to a local folder, with the revision that names its content."""

    root: Path
    kind: str  # one of KINDS
    uri: str  # reads the same files again: a folder path, gs://BUCKET/PREFIX or git+URL@COMMIT
    given: str  # the --data value as given
    revision: str | None  # the commit, "generations:<sha256>", or None for a plain folder
    details: dict[str, Any] = field(default_factory=dict)
    generations: dict[str, int] | None = None  # gs:// only: every object read and its generation

    def lineage(self) -> dict[str, Any]:
        """The manifest's `dataset.source`: kind, URI, revision and the kind's own facts."""
        return {
            "kind": self.kind,
            "uri": self.uri,
            "given": self.given,
            "revision": self.revision,
            **self.details,
        }

    def describe(self) -> str:
        """One line for logs and reports, e.g. `git file:///d.git at 1a2b3c4d5e6f (main)`."""
        if self.kind == "git":
            requested = self.details.get("requested")
            asked = f" ({requested})" if requested and requested != self.revision else ""
            return f"git {self.details['repo']} at {self.revision}{asked}"
        if self.kind == "gcs":
            return f"gs:// {self.uri}, {len(self.generations or {})} objects ({self.revision})"
        return f"folder {self.uri}"


def generations_revision(generations: dict[str, int]) -> str:
    """One name for a set of object generations: the same objects at the same generations, same name."""
    lines = "\n".join(f"{name}\t{generation}" for name, generation in sorted(generations.items()))
    return "generations:" + hashlib.sha256(lines.encode()).hexdigest()


def _gcs(uri: str, cache_dir: Path) -> Snapshot:
    from training.gcs import download_prefix, split_uri

    bucket, prefix = split_uri(uri)
    root, generations = download_prefix(uri, cache_dir)
    canonical = f"gs://{bucket}/{prefix}".rstrip("/")
    revision = generations_revision(generations)
    return Snapshot(root, "gcs", canonical, uri, revision, {"objects": len(generations)}, generations)


def _git(uri: str, cache_dir: Path, timeout_s: float) -> Snapshot:
    tree = git_source.checkout(uri, cache_dir, timeout_s)
    return Snapshot(tree.root, "git", tree.uri, uri, tree.commit, tree.lineage())


def resolve_source(
    uri: str, cache_dir: Path, git_timeout_s: float = git_source.DEFAULT_TIMEOUT_S
) -> Snapshot:
    """A local snapshot of a folder, gs://BUCKET/PREFIX or git+URL@REV (downloads under cache_dir)."""
    if not uri.strip():
        raise UsageError("no dataset given; pass a folder, gs://BUCKET/PREFIX or git+URL@REV")
    if (bad := control_character(uri)) is not None:  # no folder, bucket or repository is named so
        raise UsageError(f"dataset {uri!r} holds {bad}; pass a folder, gs://BUCKET/PREFIX or git+URL@REV")
    if uri.startswith("gs://"):
        return _gcs(uri, cache_dir)
    if git_source.is_git_uri(uri):
        return _git(uri, cache_dir, git_timeout_s)
    if "://" in uri and not uri.startswith("file://"):
        raise MlopsError(
            f"dataset {uri}: unsupported scheme; use a folder path, gs://BUCKET/PREFIX or git+URL@REV"
        )
    path = Path(uri.removeprefix("file://")).expanduser()
    return Snapshot(path, "folder", str(path.resolve()), uri, None)
