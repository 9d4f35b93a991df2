"""Value skew: brighter scans retrain with a warning in the lineage, the report and the email."""

from __future__ import annotations

import email
import json
from email import policy

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow

FAST = ("--epochs", "1")
NO_GATE = ("--accuracy-threshold", "0", "--recall-floor", "0")


def test_drifted_intensity_trains_with_a_warning_everywhere_or_stops_when_asked(
    cli, demo, tmp_path, settings, monkeypatch, promote
):
    from registry import open_registry

    assert cli("train", "--data", str(demo), "--image-size", "32", *FAST, *NO_GATE).code == 0
    brighter = tmp_path / "brighter"  # the same scans from an over-exposed export
    for path in sorted(demo.rglob("*.png")):
        pixels = np.asarray(Image.open(path), dtype=np.int16) + 90
        (brighter / path.parent.name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
            brighter / path.parent.name / path.name
        )

    result = cli("retrain", "--data", str(brighter), *FAST, *NO_GATE, "--json")
    assert result.code == 0, result.err
    warnings = json.loads(result.out)["validation"]["warnings"]
    assert any(w.startswith("value skew: mean intensity") for w in warnings), warnings
    registry = open_registry(settings)
    manifest = registry.resolve("testing:2").manifest.to_dict()
    assert manifest["dataset"]["validation"]["warnings"] == warnings
    assert manifest["dataset"]["validation"]["reference"] == "testing:1"
    report = (registry.fetch("testing:2").dir / "report.html").read_text()
    assert "value skew: mean intensity" in report
    assert "data warning:  value skew: mean intensity" in cli("registry", "show", "testing:2").out

    assert cli("notify", "testing:2", "--event", "candidate").code == 0
    (sent,) = sorted(settings.outbox.glob("*.eml"))
    body = (
        email.message_from_bytes(sent.read_bytes(), policy=policy.default).get_body(("plain",)).get_content()
    )
    assert "Data warnings (value skew, trained anyway):" in body and "mean intensity" in body

    # A team that wants value skew to stop the pipeline says so in the settings. Production (the
    # reference of the next retrain) learned from the original scans.
    promote(registry, "testing:1", actor="tester", reason="reference for the strict retrain")
    monkeypatch.setenv("MLOPS_VALIDATION_STOP_ON_VALUE_SKEW", "true")
    stopped = cli("retrain", "--data", str(brighter), "--force", *FAST, *NO_GATE)
    assert stopped.code == 3 and "validation.stop_on_value_skew is on" in stopped.err
    assert [v.version for v in registry.list()] == [1, 2]
