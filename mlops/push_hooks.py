"""Local push triggers: a git `post-receive` hook per repository that queues its pipeline on a push.

The laptop equivalent of the Jenkins jobs (jenkins/jobs/): a push to the code repository runs the
code pipeline on the pushed commit, to the dataset repository the data pipeline on the pushed
revision, to the tests repository the tests pipeline with the pushed suite. The hook only queues
the run (mlops.trigger_runs); it never makes the push wait and never refuses it.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from core import git_source
from core.errors import MlopsError, UsageError
from core.settings import Settings

PIPELINES = ("code", "data", "tests")
HOOK_NAME = "post-receive"  # runs after the refs are updated: it cannot refuse or lose the push
MARK = "installed by `mlops triggers install`"


@dataclass(frozen=True)
class Watched:
    """A repository whose pushes to `branch` run `pipeline`."""

    pipeline: str
    repo: Path  # absolute; bare (a "remote" to push to) or not
    branch: str

    @property
    def url(self) -> str:
        """The repository as a git URL (what the lineage records)."""
        return self.repo.as_uri()

    def source(self, rev: str) -> str:
        """`git+file://REPO@REV`: how a pipeline is handed this repository at a revision."""
        return f"git+{self.url}@{rev}"

    def head(self) -> str | None:
        """The commit `branch` points at now, or None while the branch has no commit."""
        try:
            out = git_source.run_git(
                ["--git-dir", str(git_dir(self.repo)), "rev-parse", "--verify", "--quiet",
                 f"refs/heads/{self.branch}^{{commit}}"],
                f"reading {self.branch} of {self.repo}",
            )  # fmt: skip
        except MlopsError:
            return None
        return out.strip() or None


def git_dir(repo: Path) -> Path:
    """The repository's git folder (the repository itself when bare); a clear error if it is none."""
    if not repo.is_dir():
        raise UsageError(f"{repo} does not exist; create it (git init --bare {repo}) or pass --init")
    try:
        out = git_source.run_git(
            ["rev-parse", "--absolute-git-dir"], f"{repo} is not a git repository", cwd=repo
        )
    except MlopsError:
        raise UsageError(
            f"{repo} is not a git repository; create it with `git init --bare {repo}` or pass --init"
        ) from None
    found = Path(out.strip())
    if repo.resolve() not in (found, found.parent):  # bare: the repository; else its .git's parent
        raise UsageError(f"{repo} is inside the git repository {found.parent}, not one itself")
    return found


def hooks_dir(repo: Path) -> Path:
    """Where git looks for this repository's hooks (core.hooksPath respected)."""
    out = git_source.run_git(["rev-parse", "--git-path", "hooks"], "git rev-parse", cwd=repo).strip()
    return (repo / out).resolve()


def default_branch(repo: Path) -> str:
    """The branch HEAD names (main for a repository made by `git init -b main`)."""
    out = git_source.run_git(["symbolic-ref", "--short", "HEAD"], f"{repo} has no default branch", cwd=repo)
    return out.strip()


def hook_script(watched: Watched, global_argv: list[str]) -> str:
    """The post-receive hook: hand the pushed refs to `mlops triggers hook`; always exit 0."""
    command = shlex.join(
        [sys.executable, "-m", "mlops.cli", *global_argv, "triggers", "hook", watched.pipeline,
         "--repo", str(watched.repo), "--branch", watched.branch]
    )  # fmt: skip
    return (
        "#!/bin/sh\n"
        f"# mlops-xray push trigger, {MARK}: a push to {watched.branch} here queues the\n"
        f"# {watched.pipeline} pipeline on the pushed revision. It only queues: the run goes on in the\n"
        "# background, one at a time (`mlops triggers status`), and the push never waits for it.\n"
        f"{command} || echo 'mlops: the {watched.pipeline} pipeline was not queued (see above); "
        "the push itself succeeded' >&2\n"
        "exit 0\n"
    )


def _check_hook_free(repo: Path, force: bool) -> Path:
    """The hook path, refusing to replace a hook someone else wrote (unless force)."""
    hook = hooks_dir(repo) / HOOK_NAME
    if hook.exists() and MARK not in hook.read_text(errors="replace") and not force:
        raise MlopsError(
            f"{hook} exists and was not installed by mlops; move it away (or chain it yourself), "
            "or pass --force to replace it"
        )
    return hook


def install(
    settings: Settings,
    repos: dict[str, Path],
    global_argv: list[str],
    *,
    branch: str | None = None,
    init: bool = False,
    force: bool = False,
) -> list[Watched]:
    """Install the hooks (creating bare repositories with init) and record them; all or nothing."""
    if not repos:
        raise UsageError("name at least one repository: --code REPO, --data REPO and/or --tests REPO")
    resolved = {pipeline: Path(path).expanduser().resolve() for pipeline, path in repos.items()}
    if len(set(resolved.values())) != len(resolved):
        raise UsageError("each pipeline needs its own repository (one repository cannot trigger two)")
    # Check everything before changing anything.
    for repo in resolved.values():
        if repo.exists() or not init:  # with init, git creates a missing repository and its parents
            git_dir(repo)
            _check_hook_free(repo, force)
    watched = []
    for pipeline, repo in resolved.items():
        if not repo.exists():
            git_source.run_git(
                ["init", "--bare", "--quiet", "-b", branch or "main", str(repo)], f"cannot create {repo}"
            )
        item = Watched(pipeline, repo, branch or default_branch(repo))
        hook = _check_hook_free(repo, force)
        hook.parent.mkdir(parents=True, exist_ok=True)
        hook.write_text(hook_script(item, global_argv))
        hook.chmod(0o755)
        watched.append(item)
    config = load_config(settings)
    config.update({item.pipeline: item for item in watched})
    settings.triggers_dir.mkdir(parents=True, exist_ok=True)
    data = {name: {**asdict(item), "repo": str(item.repo)} for name, item in sorted(config.items())}
    settings.triggers_config.write_text(json.dumps(data, indent=1) + "\n")
    return watched


def load_config(settings: Settings) -> dict[str, Watched]:
    """The repositories `mlops triggers install` set up, by pipeline (empty before any install)."""
    try:
        data = json.loads(settings.triggers_config.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise MlopsError(
            f"{settings.triggers_config} is not valid JSON ({exc}); run mlops triggers install"
        ) from None
    return {
        name: Watched(item["pipeline"], Path(item["repo"]), item["branch"])
        for name, item in data.items()
        if name in PIPELINES
    }
