"""A git repository at a revision, written as pip writes VCS URLs (`git+URL@REV`), as a read-only folder.

One mirror per repository URL under `<cache>/git/<hash>/mirror.git` (fetched, never checked out) and one
read-only tree per commit beside it (`trees/<commit>/`). A tree is keyed by its commit, so it never
changes once written: two runs on the same commit share it, and a later reader (the model tests
reading a version's test split) finds it again without the network. The real `git` binary does the
work; nothing here parses git's object format.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from core.errors import MlopsError, UsageError
from core.safe_paths import control_character, name_problem

PREFIX = "git+"
SCHEMES = ("file", "https", "ssh")
DEFAULT_TIMEOUT_S = 1800.0
_FULL_SHA = re.compile(r"[0-9a-f]{40}")
_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1 or SHA-256 repositories
# Variables git sets for a hook (GIT_DIR, ...) would point our git calls at the pushed repository
# instead of the one named on the command line (`git rev-parse --local-env-vars` lists them).
# Credential helpers (GIT_ASKPASS, set by Jenkins' gitUsernamePassword binding) must stay.
_REPOSITORY_ENV = {
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_CONFIG", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT",
    "GIT_OBJECT_DIRECTORY", "GIT_DIR", "GIT_WORK_TREE", "GIT_IMPLICIT_WORK_TREE", "GIT_GRAFT_FILE",
    "GIT_INDEX_FILE", "GIT_NO_REPLACE_OBJECTS", "GIT_REPLACE_REF_BASE", "GIT_PREFIX",
    "GIT_INTERNAL_SUPER_PREFIX", "GIT_SHALLOW_FILE", "GIT_COMMON_DIR", "GIT_QUARANTINE_PATH",
    "GIT_NAMESPACE",
}  # fmt: skip


@dataclass(frozen=True)
class GitSpec:
    """A parsed `git+URL[@REV]`: the repository URL and the revision asked for (None: its HEAD)."""

    url: str
    rev: str | None

    @property
    def public_url(self) -> str:
        """The URL without a password or token, fit for a manifest or a log."""
        return public_url(self.url)


@dataclass(frozen=True)
class GitTree:
    """A commit's files as a read-only folder, with the facts the lineage records."""

    root: Path
    url: str  # without credentials
    commit: str
    requested: str | None
    parents: tuple[str, ...]
    subject: str
    committed_at: str

    @property
    def uri(self) -> str:
        """`git+URL@COMMIT`: names exactly these files, wherever the repository is reachable."""
        return f"{PREFIX}{self.url}@{self.commit}"

    def lineage(self) -> dict[str, object]:
        """What a manifest records about this tree (its local folder aside)."""
        return {
            "repo": self.url,
            "commit": self.commit,
            "requested": self.requested,
            "parents": list(self.parents),
            "subject": self.subject,
            "committed_at": self.committed_at,
        }


def is_git_uri(text: str) -> bool:
    """Whether text is written as `git+URL[@REV]`."""
    return text.startswith(PREFIX)


def public_url(url: str) -> str:
    """url with any password or token removed (https://user:token@host → https://host)."""
    parts = urlsplit(url)
    if parts.password is None and not (parts.scheme == "https" and parts.username):
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _rev_problem(rev: str) -> str | None:
    """Why rev cannot name a commit, tag or branch (git check-ref-format's rules), or None."""
    if rev.startswith("-"):
        return "it starts with '-'"
    if any(c.isspace() or c in "~^:?*[\\" for c in rev):
        return "it holds a space or one of ~^:?*[\\"
    if (why := name_problem(rev)) is not None:  # '..' segments, '//', control characters, length
        return why
    if ".." in rev or "@{" in rev:
        return "it holds '..' or '@{'"
    if rev.endswith((".", ".lock")) or any(part.startswith(".") for part in rev.split("/")):
        return "a part starts with '.' or it ends with '.' or '.lock'"
    return None


def parse(text: str) -> GitSpec:
    """`git+URL[@REV]` → GitSpec; a clear usage error for anything else."""
    if not is_git_uri(text):
        raise UsageError(
            f"{text!r} is not a git source; write it as git+URL@REV (e.g. git+file:///repo@main)"
        )
    if (bad := control_character(text)) is not None:  # git would see a different URL, or none at all
        raise UsageError(f"{text!r}: holds {bad}; write git+URL@REV")
    parts = urlsplit(text[len(PREFIX) :])
    if parts.scheme not in SCHEMES:
        raise UsageError(
            f"{text!r}: unsupported git URL scheme {parts.scheme or '(none)'!r}; "
            "use git+file:///PATH, git+https://HOST/REPO or git+ssh://USER@HOST/REPO, then @REV"
        )
    if parts.query or parts.fragment:
        raise UsageError(f"{text!r}: no ?query or #fragment allowed; write git+URL@REV")
    path, rev = parts.path, None
    if "@" in path:  # as pip does: the revision follows the last @ of the path
        path, _, rev = path.rpartition("@")
        if not rev:
            raise UsageError(f"{text!r}: empty revision after @; name a commit, tag or branch")
    if not path.strip("/") or (parts.scheme != "file" and not parts.netloc):
        raise UsageError(f"{text!r}: no repository in the URL")
    if rev is not None and (why := _rev_problem(rev)) is not None:
        raise UsageError(f"{text!r}: {rev!r} is not a commit, tag or branch name ({why})")
    return GitSpec(urlunsplit((parts.scheme, parts.netloc, path, "", "")), rev)


def git_env() -> dict[str, str]:
    """The environment for git calls: no inherited repository variables, never a password prompt."""
    env = {k: v for k, v in os.environ.items() if k not in _REPOSITORY_ENV}
    env["GIT_TERMINAL_PROMPT"] = "0"  # a missing credential fails at once instead of waiting forever
    return env


def run_git(args: list[str], what: str, timeout_s: float = 60.0, cwd: Path | None = None) -> str:
    """Run `git ARGS` and return its stdout; a clear MlopsError naming `what` on any failure."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, env=git_env(), capture_output=True, text=True, timeout=timeout_s
        )
    except FileNotFoundError:
        raise MlopsError("git is not installed; install git to use git+URL@REV sources") from None
    except subprocess.TimeoutExpired:
        raise MlopsError(f"{what}: git took longer than {timeout_s:.0f} s (sources.git_timeout_s)") from None
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.strip().splitlines() if line.strip()]
        # git's first fatal/error line says why; the lines after it are generic advice.
        reasons = [line for line in lines if line.startswith(("fatal:", "error:"))] or lines[-1:]
        raise MlopsError(f"{what}: {reasons[0] if reasons else f'git exited with {done.returncode}'}")
    return done.stdout


def worktree_commit(path: Path) -> dict[str, object] | None:
    """{"repo", "commit", "dirty"} of the git work tree holding path, or None outside one (or no git)."""
    try:
        commit = run_git(["rev-parse", "HEAD"], "git rev-parse", cwd=path).strip()
        dirty = bool(run_git(["status", "--porcelain", "--", "."], "git status", cwd=path).strip())
    except MlopsError:
        return None
    try:
        remote = run_git(["config", "--get", "remote.origin.url"], "git config", cwd=path).strip()
    except MlopsError:
        remote = ""
    return {"repo": public_url(remote) if remote else None, "commit": commit, "dirty": dirty}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on path: one fetch or checkout per repository at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file() or p.is_symlink())


def _make_read_only(root: Path) -> None:
    # Files only: read-only folders would make `rm -rf .mlops` (make clean) fail for their owner.
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _remove_tree(root: Path) -> None:
    # Read-only files in our own cache: make writable, then retry.
    def writable_then_retry(func: Callable[[str], object], path: str, _exc: object) -> None:
        os.chmod(path, stat.S_IRWXU)
        func(path)

    if root.exists():
        if sys.version_info >= (3, 12):  # onerror is deprecated there (a warning, an error under pytest)
            shutil.rmtree(root, onexc=writable_then_retry)
        else:
            shutil.rmtree(root, onerror=writable_then_retry)


class _Repo:
    """The cache of one repository URL: a bare mirror and one read-only tree per commit."""

    def __init__(self, spec: GitSpec, cache_dir: Path, timeout_s: float) -> None:
        self.spec = spec
        self.timeout_s = timeout_s
        self.home = cache_dir / "git" / hashlib.sha256(spec.url.encode()).hexdigest()[:20]
        self.mirror = self.home / "mirror.git"

    def tree_dir(self, commit: str) -> Path:
        return self.home / "trees" / commit

    def cached(self, commit: str) -> GitTree | None:
        """The complete tree of commit if an earlier checkout left one, else None."""
        meta = self.home / "trees" / f"{commit}.json"
        root = self.tree_dir(commit)
        try:
            facts = json.loads(meta.read_text())
        except (OSError, ValueError):
            return None
        if not root.is_dir() or _files(root) != facts.get("files"):
            return None  # interrupted or tampered with: check it out again
        return GitTree(
            root, self.spec.public_url, commit, self.spec.rev, tuple(facts["parents"]),
            facts["subject"], facts["committed_at"],
        )  # fmt: skip

    def fetch(self) -> None:
        """Create or update the mirror from the URL (every branch and tag)."""
        where = f"cannot fetch {self.spec.public_url}"
        if not (self.mirror / "HEAD").is_file():
            partial = self.home / "mirror.tmp"
            _remove_tree(partial)
            run_git(["clone", "--mirror", "--quiet", self.spec.url, str(partial)], where, self.timeout_s)
            partial.rename(self.mirror)
            return
        run_git(
            ["--git-dir", str(self.mirror), "fetch", "--prune", "--quiet", "origin"], where, self.timeout_s
        )

    def commit_of(self, rev: str) -> str | None:
        """The full commit a revision names in the mirror, or None."""
        try:
            out = run_git(
                ["--git-dir", str(self.mirror), "rev-parse", "--verify", "--quiet", "--end-of-options",
                 f"{rev}^{{commit}}"],
                "git rev-parse",
            )  # fmt: skip
        except MlopsError:
            return None
        commit = out.strip()
        # The commit names a folder of the cache (trees/<commit>/): only ever a full object id.
        return commit if _OBJECT_ID.fullmatch(commit) else None

    def checkout(self, commit: str) -> GitTree:
        """Write commit's files into trees/<commit>/ (read-only) and return the tree."""
        git_dir = ["--git-dir", str(self.mirror)]
        info = run_git([*git_dir, "log", "-1", "--format=%P%n%cI%n%s", commit], "git log").split("\n")
        parents, committed_at, subject = tuple(info[0].split()), info[1], info[2] if len(info) > 2 else ""
        partial = self.home / "trees" / f"{commit}.tmp"
        _remove_tree(partial)
        partial.mkdir(parents=True)
        index = self.home / "trees" / f"{commit}.index"
        # A private index: the mirror stays bare and untouched. core.symlinks=false writes a
        # symlink as a small file holding its target, so a tree never reaches outside itself.
        env_index = {**git_env(), "GIT_INDEX_FILE": str(index)}
        for args in (["read-tree", commit], ["checkout-index", "--all", "--force"]):
            done = subprocess.run(
                ["git", *git_dir, "--work-tree", str(partial), "-c", "core.symlinks=false", *args],
                env=env_index, capture_output=True, text=True, timeout=self.timeout_s,
            )  # fmt: skip
            if done.returncode != 0:
                raise MlopsError(f"cannot check out {commit[:12]} of {self.spec.public_url}: {done.stderr}")
        index.unlink(missing_ok=True)
        _make_read_only(partial)
        final = self.tree_dir(commit)
        _remove_tree(final)
        partial.rename(final)
        facts = {"parents": list(parents), "subject": subject, "committed_at": committed_at}
        (self.home / "trees" / f"{commit}.json").write_text(json.dumps({**facts, "files": _files(final)}))
        return GitTree(final, self.spec.public_url, commit, self.spec.rev, parents, subject, committed_at)


def checkout(source: str | GitSpec, cache_dir: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> GitTree:
    """The files of `git+URL@REV` at the commit REV names, as a read-only folder under cache_dir/git."""
    spec = parse(source) if isinstance(source, str) else source
    repo = _Repo(spec, cache_dir, timeout_s)
    with _locked(repo.home / "lock"):
        # A full commit id names the same files forever: a complete tree needs no network.
        if spec.rev and _FULL_SHA.fullmatch(spec.rev) and (tree := repo.cached(spec.rev)):
            return tree
        if not (spec.rev and _FULL_SHA.fullmatch(spec.rev) and repo.commit_of(spec.rev)):
            repo.fetch()
        commit = repo.commit_of(spec.rev or "HEAD")
        if commit is None:
            what = f"revision {spec.rev!r}" if spec.rev else "commit on its default branch (HEAD)"
            raise MlopsError(
                f"{spec.public_url} has no {what}; name an existing commit, tag or branch after @"
            )
        return repo.cached(commit) or repo.checkout(commit)
