"""`mlops test-model --suite`: model tests from their own repository (real git) or a folder."""

from __future__ import annotations

import json

import pytest
from gitrepos import bare_repo, commit_all, git, work_repo

from core.digests import tree_digest

NEW_TEST = '''
def test_every_class_is_predicted_somewhere(split_predictions, classes):
    """A model that never predicts a class is broken, whatever its accuracy."""
    assert set(split_predictions.argmax(axis=1).tolist()) == set(range(len(classes)))
'''
FAILING_TEST = """
def test_the_model_knows_four_classes(classes):
    assert len(classes) == 4
"""


@pytest.mark.slow
def test_a_suite_from_its_own_repository_runs_and_its_commit_is_recorded(
    cli, settings, register_tiny, tmp_path
):
    from registry import open_registry

    ref = register_tiny("good")
    bare = bare_repo(tmp_path / "model-tests.git")
    work = work_repo(tmp_path / "model-tests", remote=bare)
    (work / "test_classes.py").write_text(NEW_TEST)
    first = commit_all(work, "every class is predicted")
    git("push", "--quiet", "origin", "main", cwd=work)

    result = cli("test-model", ref, "--suite", f"git+{bare.as_uri()}@main", "--json")
    assert result.code == 0, result.err[-3000:]
    report = json.loads(result.out)
    assert report["summary"] == {"passed": 1, "failed": 0, "errors": 0, "skipped": 0}  # only that suite ran
    assert report["suite"]["revision"] == first
    recorded = open_registry(settings).resolve(ref).manifest.annotations.tests[-1]
    assert recorded.suite == f"git+{bare.as_uri()}@{first}"
    source = dict(recorded.suite_source or {})
    digest = source.pop("digest")  # the content digest a trust policy pins (core.digests)
    assert source == {
        "kind": "git", "uri": f"git+{bare.as_uri()}@{first}", "revision": first, "dirty": None,
    }  # fmt: skip
    assert digest.startswith("sha256:") and len(digest) == len("sha256:") + 64

    (work / "test_four.py").write_text(FAILING_TEST)
    second = commit_all(work, "four classes")
    git("push", "--quiet", "origin", "main", cwd=work)
    failed = cli("test-model", ref, "--suite", f"git+{bare.as_uri()}@main")
    assert failed.code == 3
    assert f"at commit {second}" in failed.out
    recorded = open_registry(settings).resolve(ref).manifest.annotations.tests[-1]
    assert recorded.passed is False and recorded.suite_source is not None
    assert recorded.suite_source["revision"] == second
    assert "test_the_model_knows_four_classes" in " ".join(recorded.failures)


@pytest.mark.slow
def test_a_folder_suite_and_the_builtin_one_are_named(cli, settings, register_tiny, tmp_path):
    ref = register_tiny("good")
    folder = tmp_path / "my-tests"
    folder.mkdir()
    (folder / "test_classes.py").write_text(NEW_TEST)
    result = cli("test-model", ref, "--suite", str(folder), "--json", "--no-record")
    assert result.code == 0, result.err[-3000:]
    report = json.loads(result.out)
    suite = dict(report["suite"])
    assert suite.pop("digest") == tree_digest(folder)  # what a trust policy's required_suites names
    assert suite == {"kind": "folder", "uri": str(folder), "revision": None, "dirty": None}
    assert report["summary"]["passed"] == 1


def test_a_suite_that_is_not_there_or_holds_no_tests_is_a_clear_error(cli, register_tiny, tmp_path):
    ref = register_tiny("good")
    missing = cli("test-model", ref, "--suite", str(tmp_path / "nowhere"))
    assert missing.code == 2 and "no such folder" in missing.err
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "helpers.py").write_text("X = 1\n")
    empty = cli("test-model", ref, "--suite", str(tmp_path / "empty"))
    assert empty.code == 1 and "holds no test_*.py files" in empty.err
    bad = cli("test-model", ref, "--suite", "git+ftp://example.com/tests.git@main")
    assert bad.code == 2 and "unsupported git URL scheme" in bad.err
