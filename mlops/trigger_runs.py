"""Pipeline runs queued by a push: one record and one log per run, one run at a time under a lock.

The hook queues (`queue`): it writes the run's record and starts `mlops triggers run ID` in the
background with its output in the run's log, then returns so the push completes. The run (`run`)
takes the pipeline lock (an flock: a run that finds it held waits its turn), then runs
`mlops pipeline PIPELINE` as Jenkins would: from the code repository's commit (the pushed one for
the code pipeline, the watched branch's head otherwise), on exactly the pushed dataset revision or
test suite, with GIT_COMMIT / GIT_URL naming the code in the lineage.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core import git_source
from core.errors import EXIT_FAILED_CHECK, EXIT_OK, MlopsError
from core.processes import alive
from core.settings import Settings
from mlops.push_hooks import Watched, load_config

STATES = ("queued", "waiting", "running", "ok", "failed", "check-failed", "lost")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass
class RunRecord:
    """One pipeline run started by a push: what was pushed, where its log is, how it ended."""

    id: str
    pipeline: str
    repo: str
    branch: str
    rev: str
    log: str
    queued_at: str
    state: str = "queued"
    pid: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    command: list[str] = field(default_factory=list)
    code_commit: str | None = None  # the code that ran the pipeline (None: the installed mlops)

    def save(self, settings: Settings) -> None:
        """Write the record atomically (readers never see half a file)."""
        path = record_path(settings, self.id)
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(asdict(self), indent=1) + "\n")
        os.replace(partial, path)


def record_path(settings: Settings, run_id: str) -> Path:
    return settings.trigger_runs / f"{run_id}.json"


def load_record(settings: Settings, run_id: str) -> RunRecord:
    """The record of a queued run; a clear error for an unknown id."""
    try:
        return RunRecord(**json.loads(record_path(settings, run_id).read_text()))
    except FileNotFoundError:
        raise MlopsError(
            f"no queued run {run_id!r} under {settings.trigger_runs}; see mlops triggers status"
        ) from None


def records(settings: Settings) -> list[RunRecord]:
    """Every run record, oldest first."""
    if not settings.trigger_runs.is_dir():
        return []
    found = []
    for path in sorted(settings.trigger_runs.glob("*.json")):
        with contextlib.suppress(ValueError, TypeError):  # a record being replaced right now
            found.append(RunRecord(**json.loads(path.read_text())))
    return found


def queue(settings: Settings, watched: Watched, rev: str, global_argv: list[str]) -> RunRecord:
    """Record a run of watched.pipeline on rev and start it in the background; returns at once."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    run_id = f"{stamp}-{watched.pipeline}-{rev[:12]}"
    settings.trigger_runs.mkdir(parents=True, exist_ok=True)
    settings.trigger_logs.mkdir(parents=True, exist_ok=True)
    log = (settings.trigger_logs / f"{run_id}.log").resolve()
    record = RunRecord(run_id, watched.pipeline, str(watched.repo), watched.branch, rev, str(log), _now())
    record.save(settings)
    command = [sys.executable, "-m", "mlops.cli", *global_argv, "triggers", "run", run_id]
    with log.open("a") as out:
        out.write(
            f"queued {watched.pipeline} pipeline for {rev} pushed to {watched.branch} of {watched.repo}\n"
        )
        out.flush()
        # A session of its own, no terminal, output only to the log: the push does not wait for it.
        subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            cwd=settings.triggers_dir, env=git_source.git_env(), start_new_session=True,
        )  # fmt: skip
    return record


@contextlib.contextmanager
def pipeline_lock(settings: Settings, record: RunRecord) -> Iterator[float]:
    """Hold the one pipeline lock; yields how long we waited for it."""
    settings.triggers_dir.mkdir(parents=True, exist_ok=True)
    holder = settings.triggers_lock.with_suffix(".holder")
    started = time.monotonic()
    with settings.triggers_lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with contextlib.suppress(OSError):
                print(
                    f"waiting: another pipeline run holds the lock ({holder.read_text().strip()})", flush=True
                )
            record.state = "waiting"
            record.save(settings)
            fcntl.flock(handle, fcntl.LOCK_EX)  # the kernel queues us; released even if that run dies
        holder.write_text(f"run {record.id}, pid {os.getpid()}\n")
        try:
            yield time.monotonic() - started
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Plan:
    """The `mlops pipeline` command a run executes, where, and with which code."""

    command: list[str]
    cwd: Path
    env: dict[str, str]
    code_commit: str | None
    notes: list[str]


def _head_source(config: dict[str, Watched], pipeline: str) -> str | None:
    """git+URL@COMMIT of a watched repository's branch head, or None (not watched, or no commit yet)."""
    watched = config.get(pipeline)
    head = watched.head() if watched else None
    return watched.source(head) if watched and head else None


def plan(settings: Settings, record: RunRecord, global_argv: list[str]) -> Plan:
    """What to run for this record, as the Jenkins job would run it."""
    config = load_config(settings)
    pushed = Watched(record.pipeline, Path(record.repo), record.branch)
    env = {**git_source.git_env(), "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    notes: list[str] = []
    code = config.get("code")
    code_rev = record.rev if record.pipeline == "code" else (code.head() if code else None)
    cwd, code_commit = settings.triggers_dir.resolve(), None
    if code and code_rev:
        tree = git_source.checkout(code.source(code_rev), settings.cache_dir, settings.sources.git_timeout_s)
        if not (tree.root / "mlops" / "cli.py").is_file():
            raise MlopsError(
                f"the code repository {code.repo} at {tree.commit[:12]} holds no mlops/cli.py: it must hold "
                "this project (mlops/, training/, ...) for a pipeline to run the pushed code"
            )
        # `python -m` puts the working folder first on sys.path: the pushed code runs, not the installed.
        cwd, code_commit = tree.root, tree.commit
        env.update(GIT_COMMIT=tree.commit, GIT_URL=tree.url, GIT_BRANCH=code.branch)
    else:
        notes.append("no code repository commit to run from: the installed mlops runs the pipeline")
    argv = ["pipeline", record.pipeline]
    data = pushed.source(record.rev) if record.pipeline == "data" else _head_source(config, "data")
    if record.pipeline != "tests" and data:
        argv += ["--data", data]
    suite = pushed.source(record.rev) if record.pipeline == "tests" else _head_source(config, "tests")
    if suite:
        argv += ["--suite", suite]
    command = [sys.executable, "-m", "mlops.cli", *global_argv, *argv]
    return Plan(command, cwd, env, code_commit, notes)


def run(settings: Settings, run_id: str, global_argv: list[str]) -> int:
    """Wait for the lock, run the pipeline of a queued run, record how it ended; its exit code."""
    record = load_record(settings, run_id)
    record.pid = os.getpid()
    with pipeline_lock(settings, record) as waited:
        record.state, record.started_at = "running", _now()
        record.save(settings)
        print(f"started {record.started_at} after waiting {waited:.1f} s for the pipeline lock", flush=True)
        started = time.monotonic()
        try:
            steps = plan(settings, record, global_argv)
        except MlopsError as exc:
            print(f"mlops triggers: error: {exc}", flush=True)
            code = 1
        else:
            record.command, record.code_commit = steps.command, steps.code_commit
            record.save(settings)
            for note in steps.notes:
                print(f"note: {note}", flush=True)
            print(f"$ (cd {steps.cwd} && {shlex.join(['mlops', *steps.command[3:]])})", flush=True)
            code = subprocess.run(steps.command, cwd=steps.cwd, env=steps.env, check=False).returncode
        record.exit_code, record.finished_at = code, _now()
        record.state = {EXIT_OK: "ok", EXIT_FAILED_CHECK: "check-failed"}.get(code, "failed")
        record.save(settings)
        print(
            f"finished {record.finished_at}: {record.pipeline} pipeline for {record.rev[:12]} "
            f"{record.state} (exit {code}) in {time.monotonic() - started:.1f} s",
            flush=True,
        )
    return code


def current_state(record: RunRecord) -> str:
    """The record's state, or "lost" when its process died before finishing (a reboot, a kill -9)."""
    unfinished = record.state in ("waiting", "running") and record.finished_at is None
    return "lost" if unfinished and record.pid and not alive(record.pid) else record.state


def describe(record: RunRecord) -> dict[str, Any]:
    """A record as `mlops triggers status --json` prints it."""
    return {**asdict(record), "state": current_state(record)}
