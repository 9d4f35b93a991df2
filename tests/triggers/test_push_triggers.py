"""`mlops triggers`: hooks installed in real repositories, real `git push`es, background runs, the lock."""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import polling
import pytest
from gitrepos import bare_repo, commit_all, git, work_repo

from mlops.push_hooks import MARK

RUN_TIMEOUT_S = 120  # a run that fails at once still starts Python twice; generous for a loaded machine


def wait_for(what: str, condition: Callable[[], object], timeout_s: float = RUN_TIMEOUT_S) -> object:
    """Poll until condition() is truthy (the shared helper, with this file's run timeout)."""
    return polling.wait_for(what, condition, timeout_s, interval_s=0.2)


def runs(settings) -> list[dict]:
    folder = settings.trigger_runs
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def finished(settings, count: int) -> list[dict] | None:
    found = runs(settings)
    return found if len(found) >= count and all(r["finished_at"] for r in found) else None


@pytest.fixture
def tests_repo(cli, tmp_path, settings) -> dict:
    """A bare tests repository with the trigger installed and a work tree to push from."""
    bare = tmp_path / "remotes" / "tests.git"
    (tmp_path / "remotes").mkdir()
    assert cli("triggers", "install", "--init", "--tests", str(bare)).code == 0
    work = work_repo(tmp_path / "tests", remote=bare)
    (work / "test_new.py").write_text("def test_nothing():\n    pass\n")
    return {"bare": bare, "work": work, "commit": commit_all(work, "a model test")}


def test_install_creates_repositories_and_executable_hooks(cli, tmp_path, settings):
    remotes = tmp_path / "remotes"  # does not exist yet: --init creates it too
    result = cli(
        "triggers", "install", "--init", "--code", str(remotes / "code.git"),
        "--data", str(remotes / "dataset.git"), "--tests", str(remotes / "tests.git"),
    )  # fmt: skip
    assert result.code == 0, result.err
    for name, pipeline in (("code", "code"), ("dataset", "data"), ("tests", "tests")):
        hook = remotes / f"{name}.git" / "hooks" / "post-receive"
        assert os.access(hook, os.X_OK)
        text = hook.read_text()
        assert MARK in text and f"triggers hook {pipeline}" in text
        assert str(settings.home.resolve()) in text  # runs keep this home and registry
        assert git("rev-parse", "--is-bare-repository", cwd=remotes / f"{name}.git").strip() == "true"
    status = cli("triggers", "status", "--json")
    repositories = json.loads(status.out)["repositories"]
    assert repositories["data"] == {
        "pipeline": "data",
        "repo": str(remotes / "dataset.git"),
        "branch": "main",
    }
    assert cli("triggers", "install", "--code", str(remotes / "code.git")).code == 0  # ours: replaced


def test_install_refuses_and_changes_nothing(cli, tmp_path, settings):
    data = bare_repo(tmp_path / "dataset.git")
    tests = bare_repo(tmp_path / "tests.git")
    (tests / "hooks" / "post-receive").write_text("#!/bin/sh\necho deploy the docs\n")
    refused = cli("triggers", "install", "--data", str(data), "--tests", str(tests))
    assert refused.code == 1 and "was not installed by mlops" in refused.err and "--force" in refused.err
    assert not (data / "hooks" / "post-receive").exists()  # all or nothing
    assert not settings.triggers_config.exists()
    plain = tmp_path / "plain"
    plain.mkdir()
    not_repo = cli("triggers", "install", "--data", str(plain))
    assert not_repo.code == 2 and "is not a git repository" in not_repo.err
    missing = cli("triggers", "install", "--data", str(tmp_path / "none.git"))
    assert missing.code == 2 and "--init" in missing.err and not (tmp_path / "none.git").exists()
    twice = cli("triggers", "install", "--data", str(data), "--tests", str(data))
    assert twice.code == 2 and "its own repository" in twice.err
    assert cli("triggers", "install").code == 2
    forced = cli("triggers", "install", "--tests", str(tests), "--force")
    assert forced.code == 0 and MARK in (tests / "hooks" / "post-receive").read_text()


def test_a_push_queues_a_background_run_and_returns_at_once(tests_repo, settings):
    started = time.monotonic()
    pushed = git("push", "origin", "main", cwd=tests_repo["work"])
    assert time.monotonic() - started < 15  # the hook queues; it does not run the pipeline
    assert "mlops: tests pipeline queued for" in pushed
    (record,) = wait_for("the run to finish", lambda: finished(settings, 1))
    assert record["rev"] == tests_repo["commit"] and record["pipeline"] == "tests"
    # An empty registry: the tests pipeline fails, clearly, in its own log; the push was not affected.
    assert (record["state"], record["exit_code"]) == ("failed", 1)
    log = Path(record["log"]).read_text()
    assert f"--suite git+{tests_repo['bare'].as_uri()}@{tests_repo['commit']}" in log
    assert "register a model first" in log
    assert git("rev-parse", "main", cwd=tests_repo["bare"]).strip() == tests_repo["commit"]


def test_a_push_to_another_branch_or_a_deletion_runs_nothing(tests_repo, settings):
    pushed = git("push", "origin", "main:feature", cwd=tests_repo["work"])
    assert "not run (the tests pipeline runs on pushes to main)" in pushed
    deleted = git("push", "origin", ":feature", cwd=tests_repo["work"])
    assert "refs/heads/feature deleted: nothing to run" in deleted
    assert runs(settings) == []


def test_a_push_while_a_run_holds_the_lock_waits_its_turn(tests_repo, settings):
    settings.triggers_dir.mkdir(parents=True, exist_ok=True)
    with settings.triggers_lock.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a pipeline run going on
        settings.triggers_lock.with_suffix(".holder").write_text("run from the test\n")
        git("push", "origin", "main", cwd=tests_repo["work"])
        waiting = wait_for("the run to wait", lambda: [r for r in runs(settings) if r["state"] == "waiting"])
        time.sleep(1.0)
        assert runs(settings)[0]["started_at"] is None  # still waiting, not running beside the other
        released = time.time()
        fcntl.flock(lock, fcntl.LOCK_UN)
    (record,) = wait_for("the run to finish", lambda: finished(settings, 1))
    assert record["id"] == waiting[0]["id"]
    from datetime import datetime

    assert datetime.fromisoformat(record["started_at"]).timestamp() >= released - 0.5
    assert (
        "waiting: another pipeline run holds the lock (run from the test)" in Path(record["log"]).read_text()
    )


def test_a_failing_hook_never_fails_the_push(tests_repo, settings):
    settings.triggers_dir.mkdir(parents=True, exist_ok=True)
    settings.trigger_runs.write_text("not a folder")  # queueing will fail
    pushed = git("push", "origin", "main", cwd=tests_repo["work"])  # asserts exit 0
    assert "the tests pipeline was not queued" in pushed
    assert git("rev-parse", "main", cwd=tests_repo["bare"]).strip() == tests_repo["commit"]


def test_the_code_pipeline_refuses_a_repository_that_is_not_this_project(cli, tmp_path, settings):
    code = tmp_path / "code.git"
    assert cli("triggers", "install", "--init", "--code", str(code)).code == 0
    work = work_repo(tmp_path / "code", remote=code)
    (work / "README.md").write_text("not the project\n")
    commit = commit_all(work, "readme")
    git("push", "origin", "main", cwd=work)
    (record,) = wait_for("the run to finish", lambda: finished(settings, 1))
    assert (record["rev"], record["exit_code"]) == (commit, 1)
    assert "holds no mlops/cli.py" in Path(record["log"]).read_text()
    status = cli("triggers", "status")
    assert f"code  {commit[:12]}  failed" in status.out


def test_a_run_whose_process_died_shows_as_lost(cli, settings):
    from mlops.trigger_runs import RunRecord

    settings.trigger_runs.mkdir(parents=True)
    gone = RunRecord(
        "20260101T000000000000Z-data-0a1b2c3d4e5f", "data", "/srv/d.git", "main", "0a1b2c3d4e5f" * 3,
        "/tmp/x.log", "2026-01-01T00:00:00+00:00", state="running", pid=2**22 + 7,  # above any pid_max
    )  # fmt: skip
    gone.save(settings)
    status = json.loads(cli("triggers", "status", "--json").out)
    assert [r["state"] for r in status["runs"]] == ["lost"]
    assert "lost" in cli("triggers", "status").out
