"""The suite on a model really trained by `mlops train` on `mlops demo-data`, golden images included."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_demo_trained_model_passes_the_suite_with_golden_images(cli, settings):
    assert cli("demo-data").code == 0
    trained = cli("train", "--data", str(settings.home / "data" / "demo"))
    assert trained.code == 0, trained.err[-2000:]
    result = cli("test-model", "testing:latest", "--json")
    assert result.code == 0, result.err[-3000:]
    report = json.loads(result.out)
    assert report["passed"] is True
    assert not [s for s in report["skipped"] if "golden" in s], report["skipped"]  # the goldens ran
    assert report["measurements"]["resolution_agreement"] >= settings.model_tests.robustness_min_agreement
