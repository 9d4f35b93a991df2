"""Real git repositories for tests: bare "remotes", work trees, commits and pushes with the git binary."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

# A fixed identity and no user or system configuration: the same commits on every machine.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Pusher",
    "GIT_AUTHOR_EMAIL": "pusher@example.com",
    "GIT_COMMITTER_NAME": "Test Pusher",
    "GIT_COMMITTER_EMAIL": "pusher@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """Run git in cwd; return stdout (stderr too on failure, in the assertion)."""
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**(env or os.environ), **GIT_ENV},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"git {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr if args[0] == "push" else done.stdout


def bare_repo(path: Path) -> Path:
    """An empty bare repository whose default branch is main (what a push goes to)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    git("init", "--bare", "--quiet", "-b", "main", str(path), cwd=path.parent)
    return path


def work_repo(path: Path, remote: Path | None = None) -> Path:
    """A work tree on branch main, with `origin` pointing at remote when given."""
    path.mkdir(parents=True, exist_ok=True)
    git("init", "--quiet", "-b", "main", cwd=path)
    if remote is not None:
        git("remote", "add", "origin", remote.as_uri(), cwd=path)
    return path


def commit_all(repo: Path, message: str) -> str:
    """Stage everything (deletions too), commit, and return the new commit id."""
    git("add", "--all", cwd=repo)
    git("commit", "--quiet", "-m", message, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo).strip()


def copy_tree(src: Path, dest: Path) -> None:
    """Copy a folder's files (no caches) into dest."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
