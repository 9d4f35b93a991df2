"""End to end on the demo model: the locked reference set stops a candidate trained on shifted data,
a healthy retrain passes, the version records its calibration, and the sets are create-only.

One production model is trained once for the module (real training is slow); each test works on its
own copy of that registry.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlops.cli import main

pytestmark = pytest.mark.slow

SIZE = ("--image-size", "32")
NO_THRESHOLDS = ("--accuracy-threshold", "0", "--recall-floor", "0")


def _mlops(home: Path, *args: str) -> int:
    try:
        return main(["--home", str(home), "--registry", f"file://{home / 'registry'}", *args])
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(home with production:1 and reference set 1, the training data) built once for the module."""
    from registry import open_registry
    from registry.manifest import TestRun

    root = tmp_path_factory.mktemp("reference-gate")
    home, data, reference = root / "home", root / "data", root / "reference"
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in __import__("os").environ if k.startswith("MLOPS_")]:
            mp.delenv(key)
        mp.chdir(root)
        # BatchNorm's validation loss is noisy for the first epochs on 240 images: no early stop.
        mp.setenv("MLOPS_TRAIN_EARLY_STOPPING_PATIENCE", "100")
        assert _mlops(home, "demo-data", "--out", str(data), "--per-class", "80", "--size", "32") == 0
        assert _mlops(home, "train", "--data", str(data), *SIZE, "--epochs", "30", *NO_THRESHOLDS) == 0
        # No trust policy here: this OS account approves as product-owner (deploy.approver_accounts).
        from core.identity import os_account
        from core.settings import load_settings

        mp.setenv("MLOPS_DEPLOY_APPROVER_ACCOUNTS", f"{os_account()}=product-owner")
        mp.setenv("MLOPS_HOME", str(home))

        settings = load_settings(overrides={"registry.uri": f"file://{home / 'registry'}", "home": str(home)})
        registry = open_registry(settings)
        registry.annotate("testing:1", TestRun(passed=True, suite="fixture"), actor="ci")
        registry.promote("testing:1", expected_production=None, actor="po", reason="fixture")
        args = ("demo-data", "--out", str(reference), "--batch", "3", "--per-class", "40", "--size", "32")
        assert _mlops(home, *args) == 0
        assert _mlops(home, "reference", "set", "--data", str(reference), "--actor", "curator") == 0
    yield home, data


@pytest.fixture
def home(production: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLOPS_TRAIN_EARLY_STOPPING_PATIENCE", "100")
    copy = tmp_path / "home"
    shutil.copytree(production[0], copy)
    return copy


def _darkened(src: Path, dest: Path, factor: float) -> Path:
    for path in src.rglob("*.png"):
        out = dest / path.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.asarray(Image.open(path), dtype=np.float32) * factor
        Image.fromarray(pixels.astype(np.uint8)).save(out)
    return dest


def test_reference_regression_stops_a_candidate_trained_on_shifted_data(
    home, production, tmp_path, capsys, monkeypatch
):
    # Production misreads darkened images, so the label check flags many (it would stop them first):
    # let them through to show the reference set alone stops the candidate.
    monkeypatch.setenv("MLOPS_VALIDATION_MAX_LABEL_ISSUE_SHARE", "1.0")
    dark = _darkened(production[1], tmp_path / "dark", 0.3)
    code = _mlops(home, "retrain", "--data", str(dark), "--epochs", "15", *NO_THRESHOLDS, "--json")
    out = capsys.readouterr()
    assert code == 3, out.err
    gate = json.loads(out.out)["gate"]
    failed = [c["name"] for c in gate["criteria"] if not c["passed"]]
    assert "reference:1:not_worse_than_production" in failed, gate["reasons"]
    # On its own (darkened) test split the candidate does not look worse than production.
    assert "not_worse_than_production" not in failed
    words = [
        n for n in gate["notes"] if n.startswith("regression against production:1 on the reference set 1")
    ]
    assert words and "95% CI [" in words[0] and "McNemar exact p = " in words[0]
    assert gate["reference"]["version"] == 1 and gate["reference"]["n"] == 120
    assert [c["on"] for c in gate["comparisons"]] == ["test split", "reference set 1"]


def _moved(src: Path, dest: Path, share: float, source: str, target: str) -> Path:
    """A copy of SRC with SHARE of SOURCE's images moved into TARGET's folder (label noise)."""
    shutil.copytree(src, dest)
    files = sorted((dest / source).glob("*.png"))
    for path in files[: int(len(files) * share)]:
        path.rename(dest / target / f"moved_{path.name}")
    return dest


def test_label_noise_stops_the_data_pipeline_naming_both_classes(home, production, tmp_path, capsys):
    from core.settings import load_settings
    from registry import open_registry

    noisy = _moved(production[1], tmp_path / "noisy", 0.5, "pneumonia", "normal")
    code = _mlops(home, "retrain", "--data", str(noisy), "--epochs", "2", *NO_THRESHOLDS, "--json")
    out = capsys.readouterr()
    assert code == 3, out.err
    summary = json.loads(out.out)
    issues = summary["validation"]["label_issues"]
    top = issues["pairs"][0]
    assert (top["given"], top["suggested"]) == ("normal", "pneumonia") and top["count"] >= 30
    assert issues["share"] > 0.10
    stop = summary["validation"]["stops"][0]
    assert "labelled normal look like pneumonia" in stop and "max_label_issue_share" in stop
    assert all(f["file"].startswith("normal/moved_") for f in issues["files"][:10])
    settings = load_settings(overrides={"registry.uri": f"file://{home / 'registry'}", "home": str(home)})
    refusals = [e for e in open_registry(settings).audit() if e["action"] == "refuse"]
    assert refusals and "label issues" in refusals[-1]["reason"]


def test_a_healthy_retrain_passes_the_reference_set(home, tmp_path, capsys):
    more = tmp_path / "more"
    assert (
        _mlops(home, "demo-data", "--out", str(more), "--batch", "2", "--per-class", "80", "--size", "32")
        == 0
    )
    capsys.readouterr()
    code = _mlops(home, "retrain", "--data", str(more), "--epochs", "10", *NO_THRESHOLDS, "--json")
    out = capsys.readouterr()
    assert code == 0, out.err
    gate = json.loads(out.out)["gate"]
    assert any(
        n.startswith("no evidence of regression against production:1 on the reference set 1")
        for n in gate["notes"]
    )


def test_the_version_records_its_calibration_and_it_helps(home):
    manifest = json.loads(next((home / "registry" / "testing").rglob("1/manifest.json")).read_text())
    calibration = manifest["calibration"]
    assert calibration["temperature"] > 0 and calibration["method"]
    assert (
        calibration["ece_after"] <= calibration["ece_before"] + 1e-6
    )  # equal but for rounding when T = 1 is kept
    assert (next((home / "registry" / "testing").rglob("1/plots/reliability.png"))).is_file()


def test_reference_sets_are_versioned_create_only_and_checked(home, production, capsys):
    from core.settings import load_settings
    from registry import IntegrityError, open_registry
    from registry.reference_sets import ReferenceSets
    from registry.store import ObjectExists

    capsys.readouterr()
    assert _mlops(home, "reference", "set", "--data", str(production[1]), "--json") == 0
    second = json.loads(capsys.readouterr().out)
    assert second["version"] == 2
    assert _mlops(home, "reference", "show", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["in_force"] == 2 and [s["version"] for s in shown["sets"]] == [1, 2]
    assert shown["sets"][0]["class_counts"] == {"covid": 40, "normal": 40, "pneumonia": 40}

    settings = load_settings(overrides={"registry.uri": f"file://{home / 'registry'}", "home": str(home)})
    sets = ReferenceSets(open_registry(settings))
    with pytest.raises(ObjectExists):
        sets.store.write(f"reference/{sets.registry.name}/1/manifest.json", b"{}", create_only=True)
    stored = sorted((home / "registry" / "reference").rglob("1/files/covid/*.png"))[0]
    stored.write_bytes(stored.read_bytes() + b"x")
    shutil.rmtree(sets.registry.cache_dir / "reference", ignore_errors=True)
    with pytest.raises(IntegrityError, match="tampered"):
        sets.fetch(1)
