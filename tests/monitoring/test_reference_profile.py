"""`mlops train` registers a reference profile of the held-out split; `mlops registry show` lists it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from registry import open_registry

FAST = ("--epochs", "1", "--image-size", "32", "--accuracy-threshold", "0", "--recall-floor", "0")


@pytest.mark.slow
def test_training_registers_the_held_out_profile_with_the_version(cli, demo, settings):
    result = cli("train", "--data", str(demo), *FAST, "--json")
    assert result.code == 0, result.err
    local = open_registry(settings).fetch("testing:1")
    manifest = local.manifest
    assert "reference_profile.json" in manifest.files  # registered, sha256-verified on fetch
    profile = json.loads((local.dir / "reference_profile.json").read_text())
    test_split = json.loads((local.dir / "test_split.json").read_text())
    assert profile["n"] == len(test_split) == manifest.metrics.n and profile["split"] == "test"
    # Every demo image is a 32x32 PNG; its statistics are those of the preprocessed tensor.
    assert set(profile["features"]["width"]) == set(profile["features"]["height"]) == {32}
    assert profile["formats"] == {"PNG": 1.0}
    assert all(0 < m < 1 for m in profile["features"]["mean"])
    assert sum(profile["intensity_hist"]) == pytest.approx(1.0, abs=1e-3)
    # The predicted-class shares agree with evaluation's confusion matrix (columns: predicted class),
    # computed by a separate path (training/evaluate.py) on the same images.
    matrix = np.array(manifest.metrics.confusion_matrix)
    expected = dict(zip(manifest.metrics.labels, matrix.sum(axis=0) / matrix.sum(), strict=True))
    assert profile["class_shares"] == pytest.approx(expected)
    reference = manifest.reference
    assert reference is not None
    assert reference.file == "reference_profile.json" and reference.n == profile["n"]
    assert reference.class_shares == pytest.approx(expected, abs=1e-5)
    assert reference.confidence_mean == pytest.approx(np.mean(profile["features"]["confidence"]), abs=1e-5)

    shown = cli("registry", "show", "testing:1")
    assert shown.code == 0
    line = next(line for line in shown.out.splitlines() if line.strip().startswith("reference:"))
    assert f"reference_profile.json: {profile['n']} test images; predicted shares covid" in line
    assert "mean confidence" in line
