"""Three repositories, real `git push`es, the three pipelines run by the pushes (no Jenkins).

code (this project) / dataset (class folders) / model tests, each a bare repository with the trigger
installed. A code change trains a version from the pushed commit; a dataset commit adding images
retrains it on exactly that commit; a new model test runs on the current model and is recorded with
the suite's commit. A corrupt image and an unknown class folder are refused; a push while a run is
going waits its turn.
"""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import pytest
from gitrepos import bare_repo, commit_all, copy_tree, git, work_repo

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("core", "registry", "training", "retraining", "unit_testing", "model_api", "deploy", "mlops")
RUN_TIMEOUT_S = 480
# The pushed code's settings: tiny data, a few epochs, no bar a 3-epoch model cannot pass.
FAST_CONFIG = """
[train]
image_size = 32
epochs = {epochs}
fine_tune_epochs = 2
[gate]
accuracy_threshold = 0.0
recall_floor = 0.0
regression_tolerance = 1.0
[api]
workers = 1
"""
SUITE = '''"""Model tests kept in their own repository; the fixtures come from unit_testing.plugin."""

import numpy as np


def test_one_probability_per_class(served, sample, classes):
    probabilities = served.predict_encoded([image.data for image in sample[:4]])
    assert probabilities.shape == (min(4, len(sample)), len(classes))


def test_accuracy_meets_the_gate(split_predictions, test_split, classes, settings):
    truth = np.array([classes.index(image.label) for image in test_split])
    assert (split_predictions.argmax(axis=1) == truth).mean() >= settings.gate.accuracy_threshold
'''
NEW_TEST = """
import numpy as np


def test_every_prediction_is_a_distribution(split_predictions):
    assert np.allclose(split_predictions.sum(axis=1), 1.0, atol=1e-4)
"""


def records(settings) -> dict[str, dict]:
    """Run records by revision."""
    folder = settings.trigger_runs
    found = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return {r["rev"]: r for r in found}


def wait_run(settings, rev: str, state: str | None = None) -> dict:
    """The record of the run for rev once it finished (or reached `state`); fails after RUN_TIMEOUT_S."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        record = records(settings).get(rev)
        if record and (record["state"] == state if state else record["finished_at"]):
            return record
        time.sleep(0.5)
    record = records(settings).get(rev)
    log = Path(record["log"]).read_text()[-4000:] if record else "(never queued)"
    pytest.fail(f"run for {rev[:12]} not {state or 'finished'} after {RUN_TIMEOUT_S} s:\n{log}")


def push(work: Path, message: str) -> tuple[str, str]:
    """Commit everything and `git push`; (commit, the push's output); the push must return quickly."""
    commit = commit_all(work, message)
    started = time.monotonic()
    output = git("push", "origin", "main", cwd=work)
    assert time.monotonic() - started < 20, "the push waited for the pipeline"
    return commit, output


def at(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def test_three_pushes_run_the_three_pipelines(cli, tmp_path, settings):
    remotes = tmp_path / "remotes"
    code_git, data_git, tests_git = (bare_repo(remotes / n) for n in ("code.git", "dataset.git", "tests.git"))

    # Before the triggers: the repositories hold a first version of the code, the data and the tests.
    code = work_repo(tmp_path / "code", remote=code_git)
    for package in PROJECT:
        copy_tree(ROOT / package, code / package)
    (code / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    (code / "mlops.toml").write_text(FAST_CONFIG.format(epochs=4))
    commit_all(code, "the project")
    git("push", "--quiet", "origin", "main", cwd=code)
    data = work_repo(tmp_path / "dataset", remote=data_git)
    assert cli("demo-data", "--out", str(data), "--per-class", "30", "--size", "32").code == 0
    first_data, _ = push(data, "batch 1")
    tests = work_repo(tmp_path / "tests", remote=tests_git)
    (tests / "test_model_basics.py").write_text(SUITE)
    first_suite, _ = push(tests, "basic model tests")

    installed = cli(
        "triggers", "install", "--code", str(code_git), "--data", str(data_git), "--tests", str(tests_git)
    )
    assert installed.code == 0, installed.err

    # (a) Push code: a changed setting in the pushed tree. The version is trained by that commit.
    (code / "mlops.toml").write_text(FAST_CONFIG.format(epochs=3))
    code_change, output = push(code, "train for 3 epochs")
    assert "mlops: code pipeline queued for" in output
    run = wait_run(settings, code_change)
    assert run["exit_code"] == 0, Path(run["log"]).read_text()[-4000:]
    first = json.loads(cli("registry", "show", "testing:1", "--json").out)["manifest"]
    assert first["code"]["commit"] == code_change and first["code"]["repo"] == code_git.as_uri()
    assert first["params"]["epochs"] == 3  # the pushed mlops.toml, not the installed one
    assert first["dataset"]["source"]["revision"] == first_data
    assert first["dataset"]["statistics"]["images"] == 90  # what the next dataset push is compared with
    assert first["annotations"]["tests"][-1]["suite_source"]["revision"] == first_suite

    # (b) Push data: new images. (c) While that run goes on, push a new model test: it waits its turn.
    assert cli("demo-data", "--out", str(data), "--batch", "2", "--per-class", "10", "--size", "32").code == 0
    new_data, output = push(data, "batch 2: new scans")
    assert "mlops: data pipeline queued for" in output
    wait_run(settings, new_data, state="running")
    (tests / "test_distributions.py").write_text(NEW_TEST)
    new_suite, output = push(tests, "every prediction is a distribution")
    assert "mlops: tests pipeline queued for" in output
    data_run, tests_run = wait_run(settings, new_data), wait_run(settings, new_suite)
    assert data_run["exit_code"] == 0, Path(data_run["log"]).read_text()[-4000:]
    assert tests_run["exit_code"] == 0, Path(tests_run["log"]).read_text()[-4000:]
    assert "waiting: another pipeline run holds the lock" in Path(tests_run["log"]).read_text()
    assert at(tests_run["started_at"]) >= at(data_run["finished_at"])

    second = json.loads(cli("registry", "show", "testing:2", "--json").out)["manifest"]
    source = second["dataset"]["source"]
    assert (source["kind"], source["revision"], source["parents"]) == ("git", new_data, [first_data])
    assert source["repo"] == data_git.as_uri() and second["parent"]["ref"] == "testing:1"
    assert second["code"]["commit"] == code_change  # the code repository's head ran the data pipeline
    shown = cli("registry", "show", "testing:2").out
    assert f"data source:   git {data_git.as_uri()}" in shown and f"data revision: {new_data}" in shown
    # The tests pipeline ran the pushed suite on the current model and recorded the suite's commit.
    result = second["annotations"]["tests"][-1]
    assert result["passed"] is True and result["suite_source"]["revision"] == new_suite
    ran = {case.get("name") for case in ET.parse(result["junit"]).getroot().iter("testcase")}
    assert "test_every_prediction_is_a_distribution" in ran

    # Bad pushes: a corrupt image among new ones, then an unknown class folder. Pushed back to back,
    # the second waits for the first; both are refused (exit 3) and register nothing.
    extra = tmp_path / "extra"
    assert cli("demo-data", "--out", str(extra), "--per-class", "4", "--size", "32").code == 0
    for image in sorted(extra.rglob("*.png")):
        image.rename(data / image.parent.name / f"extra_{image.name}")
    (data / "covid" / "upload_0007.png").write_bytes(b"\x89PNG\r\n\x1a\n interrupted upload")
    corrupt, _ = push(data, "more scans")
    (data / "covid" / "upload_0007.png").unlink()
    (data / "effusion").mkdir()
    for image in sorted((data / "normal").glob("b1_*.png"))[:5]:
        (data / "effusion" / image.name).write_bytes(image.read_bytes())
    unknown_class, _ = push(data, "effusion scans")
    refused, skewed = wait_run(settings, corrupt), wait_run(settings, unknown_class)
    assert (refused["state"], skewed["state"]) == ("check-failed", "check-failed")
    assert "covid/upload_0007.png: cannot decode image" in Path(refused["log"]).read_text()
    assert "unknown class folder(s): effusion" in Path(skewed["log"]).read_text()
    one, other = sorted((refused, skewed), key=lambda r: r["started_at"])
    assert at(other["started_at"]) >= at(one["finished_at"])  # one at a time
    versions = json.loads(cli("registry", "list", "--json").out)["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    refusals = [
        e
        for e in json.loads(cli("registry", "audit", "--json").out)
        if e["action"] == "refuse" and e.get("attempted") == "retrain"
    ]
    assert {e["dataset"]["revision"] for e in refusals} == {corrupt, unknown_class}
