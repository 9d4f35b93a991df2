"""The suite on a model really trained by `mlops train` on `mlops demo-data`, golden examples included."""

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
    # Its own golden examples (held-out demo images) ran; there is no earlier version to compare with.
    assert not [s for s in report["skipped"] if "test_own_golden" in s], report["skipped"]
    assert report["measurements"]["golden_own"] == 9  # 3 demo classes x model_tests.golden_per_class
    minimum = settings.model_tests.robustness_min_agreement
    assert report["measurements"]["resolution_agreement_upper"] >= minimum
