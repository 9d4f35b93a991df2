"""Which model test suite runs: the built-in one, a folder, or a git repository at a revision.

The model tests may live in their own repository (`--suite git+URL@REV`): the suite is checked out
read-only at the commit REV names, and that commit is recorded with the result on the version.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import git_source
from core.errors import MlopsError, UsageError

BUILTIN_DIR = Path(__file__).resolve().parent
BUILTIN_NAME = "unit_testing"


@dataclass(frozen=True)
class Suite:
    """A suite folder ready for pytest, and what names its content."""

    path: Path
    kind: str  # builtin | folder | git
    uri: str  # git+URL@COMMIT for a git suite, else the folder
    revision: str | None  # the commit the tests came from (a folder's git work tree, when it has one)
    dirty: bool | None = None  # a folder suite with changes not committed

    @property
    def name(self) -> str:
        """How the test result names the suite."""
        return BUILTIN_NAME if self.kind == "builtin" else self.uri

    def record(self) -> dict[str, Any]:
        """The `suite_source` of the result recorded on the version."""
        from core.digests import tree_digest

        # The digest names the tests' content: what a trust policy's required_suites pins.
        return {
            "kind": self.kind,
            "uri": self.uri,
            "revision": self.revision,
            "dirty": self.dirty,
            "digest": tree_digest(self.path),
        }


def _has_tests(folder: Path) -> bool:
    return any(folder.rglob("test_*.py")) or any(folder.rglob("*_test.py"))


def _folder(path: Path, kind: str) -> Suite:
    facts = git_source.worktree_commit(path) or {}
    commit, dirty = facts.get("commit"), facts.get("dirty")
    return Suite(path, kind, str(path), str(commit) if commit else None, bool(dirty) if commit else None)


def resolve_suite(source: str | None, cache_dir: Path, git_timeout_s: float) -> Suite:
    """The suite `--suite SOURCE` names: None is the built-in one; a folder; or git+URL@REV."""
    if not source:
        return _folder(BUILTIN_DIR, "builtin")
    if git_source.is_git_uri(source):
        tree = git_source.checkout(source, cache_dir, git_timeout_s)
        if not _has_tests(tree.root):
            raise MlopsError(f"suite {source} (commit {tree.commit[:12]}) holds no test_*.py files")
        return Suite(tree.root, "git", tree.uri, tree.commit)
    path = Path(source).expanduser()
    if not path.is_dir():
        raise UsageError(f"--suite {source}: no such folder; give a folder of model tests or git+URL@REV")
    path = path.resolve()
    if not _has_tests(path):
        raise MlopsError(f"suite {path} holds no test_*.py files; point --suite at the model tests")
    return _folder(path, "builtin" if path == BUILTIN_DIR else "folder")
