"""mlops retrain on a dataset repository at pushed revisions (real git): skip, retrain, refuse."""

from __future__ import annotations

import json

import pytest
from gitrepos import bare_repo, commit_all, git, work_repo

pytestmark = pytest.mark.slow

FAST = ("--epochs", "1")
NO_GATE = ("--accuracy-threshold", "0", "--recall-floor", "0")


def test_retrain_follows_the_pushed_revision_and_refuses_bad_pushes(cli, tmp_path, settings):
    from registry import open_registry

    bare = bare_repo(tmp_path / "dataset.git")
    work = work_repo(tmp_path / "dataset", remote=bare)

    def push(message: str) -> str:
        commit = commit_all(work, message)
        git("push", "--quiet", "origin", "main", cwd=work)
        return commit

    assert cli("demo-data", "--out", str(work), "--per-class", "30", "--size", "32").code == 0
    first = push("batch 1")
    at_main = f"git+{bare.as_uri()}@main"
    trained = cli("train", "--data", at_main, "--image-size", "32", *FAST, *NO_GATE, "--json")
    assert trained.code == 0, trained.err
    registry = open_registry(settings)
    source = registry.resolve("testing:1").manifest.to_dict()["dataset"]["source"]
    assert (source["kind"], source["revision"], source["requested"]) == ("git", first, "main")

    # The same revision again: nothing to learn, and nothing is even scanned.
    same = cli("retrain", "--data", f"git+{bare.as_uri()}@{first}")
    assert same.code == 0, same.err
    assert f"it was trained on this very revision ({first})" in same.out
    # A new commit with the same images (a README): a new revision, the same content.
    (work / "README.md").write_text("Chest X-rays, one folder per class.\n")
    readme = push("describe the dataset")
    unchanged = cli("retrain", "--data", at_main)
    assert unchanged.code == 0, unchanged.err
    assert f"revision {readme} holds the same images and labels" in unchanged.out
    assert [v.version for v in registry.list()] == [1]

    # New images: retrained on exactly that commit; the lineage names it, its parent commit and model.
    assert cli("demo-data", "--out", str(work), "--batch", "2", "--per-class", "10", "--size", "32").code == 0
    new_images = push("batch 2")
    result = cli("retrain", "--data", at_main, *FAST, *NO_GATE, "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["ref"] == "testing:2" and summary["dataset"]["revision"] == new_images
    manifest = registry.resolve("testing:2").manifest.to_dict()
    dataset = manifest["dataset"]
    assert dataset["uri"] == f"git+{bare.as_uri()}@{new_images}"
    assert dataset["source"]["parents"] == [readme] and dataset["source"]["repo"] == bare.as_uri()
    assert manifest["parent"]["ref"] == "testing:1"
    assert dataset["validation"]["passed"] is True and dataset["validation"]["reference"] == "testing:1"
    assert dataset["statistics"]["class_shares"] == {"covid": 0.3333, "normal": 0.3333, "pneumonia": 0.3333}
    shown = cli("registry", "show", "testing:2")
    assert f"data source:   git {bare.as_uri()}" in shown.out
    assert f"data revision: {new_images} (asked for main)" in shown.out
    assert f"data parents:  {readme}" in shown.out

    # A corrupt image among new ones: stopped (exit 3), nothing trained, the refusal audited.
    assert cli("demo-data", "--out", str(tmp_path / "extra"), "--per-class", "5", "--size", "32").code == 0
    for label in ("covid", "normal", "pneumonia"):
        for image in (tmp_path / "extra" / label).iterdir():
            image.rename(work / label / f"extra_{image.name}")
    (work / "normal" / "scan_0042.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated upload")
    corrupt = push("more scans")
    refused = cli("retrain", "--data", at_main, *FAST, *NO_GATE, "--json")
    assert refused.code == 3, refused.err
    assert "data validation stopped the retraining" in refused.err
    assert "normal/scan_0042.png: cannot decode image" in refused.err
    assert "Replace or remove them and push again" in refused.err
    assert json.loads(refused.out)["validation"]["passed"] is False
    assert [v.version for v in registry.list()] == [1, 2]
    event = registry.audit()[-1]
    assert (
        event["action"] == "refuse"
        and event["attempted"] == "retrain"
        and event["dataset"]["revision"] == corrupt
    )
    assert "unusable file" in event["reason"]

    # An unknown class folder (the corrupt file fixed): schema skew, also stopped and audited.
    (work / "normal" / "scan_0042.png").unlink()
    (work / "effusion").mkdir()
    for image in sorted((work / "covid").iterdir())[:6]:
        (work / "effusion" / image.name).write_bytes(image.read_bytes())
    schema = push("add effusion")
    skewed = cli("retrain", "--data", at_main, *FAST, *NO_GATE)
    assert skewed.code == 3
    assert "schema skew" in skewed.err and "unknown class folder(s): effusion" in skewed.err
    assert [v.version for v in registry.list()] == [1, 2]
    assert registry.audit()[-1]["dataset"]["revision"] == schema
