"""The monitor report, rendered from a real check (logged traffic and feedback), read as parsed HTML."""

from __future__ import annotations

import time

import numpy as np
from html_text import by_id, find_all, parse, table_rows, text
from monitor_testlib import CLASSES, records, reference_profile, register_version

from monitoring.check import run_check
from monitoring.report import render_html
from monitoring.window import make_window
from registry import open_registry
from registry.monitoring_log import write_batch
from registry.store import open_store

EVIL = "<script>alert(1)</script>"


def _check(settings, tmp_path):
    """A check of testing:1 over 300 brighter predictions, 100 of them labelled (60 right)."""
    version = register_version(open_registry(settings), tmp_path, reference_profile())
    logged = records(np.random.default_rng(5), 300, version, time.time() - 600, mean=0.7)
    feedback = [
        {"id": r["id"], "label": r["label"] if i % 5 >= 2 else CLASSES[(CLASSES.index(r["label"]) + 1) % 3]}
        | {"t": time.time()}
        for i, r in enumerate(logged[:100])
    ]
    store = open_store(settings.monitor_store_uri)
    for kind, batch in (("predictions", logged), ("feedback", feedback)):
        for start in range(0, len(batch), 100):
            write_batch(store, "xray-classifier", kind, batch[start : start + 100])
    return run_check(settings, "testing:1", make_window("1h"))


def test_report_shows_the_verdict_drift_and_accuracy_tables_and_every_plot(settings, tmp_path):
    result = _check(settings, tmp_path)
    page = render_html(result)
    doc = parse(page)
    assert text(find_all(doc, "h1")[0]) == "Monitoring: xray-classifier version 1 (testing:1)"
    assert text(by_id(page, "verdict")).startswith("ALERT: ")
    alerts = text(by_id(page, "alerts"))  # a list: statistic, numbers, what to check
    assert "drift in mean: PSI" in alerts and "check: " in alerts
    assert "live accuracy 0.600 < 0.8 on 100 labelled predictions" in alerts
    drift = {row[0]: row for row in table_rows(page, "drift")}
    assert drift["mean"][8] == "DRIFT" and drift["width"][8] == ""  # brighter, not larger
    assert drift["mean"][7] == "300" and float(drift["mean"][5]) > 0.5  # most of the mass moved
    accuracy = {row[0]: row[1:] for row in table_rows(page, "accuracy")}
    assert set(accuracy) == set(CLASSES)
    assert sum(int(labelled) for labelled, _ in accuracy.values()) == 100
    paragraphs = [text(p) for p in find_all(doc, "p")]
    assert any("100 labelled predictions (100 feedback records, 0 not matching" in p for p in paragraphs)
    assert any("accuracy 0.600 (gate 0.8;" in p for p in paragraphs)
    images = find_all(doc, "img")
    assert {img["attrs"]["alt"] for img in images} >= {
        "mean",
        "std",
        "intensity_hist",
        "class_shares",
    }
    # Every image is a 256x256 PNG on both sides: single-bar width/height/format plots are dropped.
    assert not {"width", "height", "format"} & {img["attrs"]["alt"] for img in images}
    assert all(img["attrs"]["src"].startswith("data:image/png;base64,iVBORw0KGgo") for img in images)


def test_outside_strings_in_the_report_are_text_not_markup(settings, tmp_path):
    result = _check(settings, tmp_path)
    result.summary["alerts"].append({"statistic": "drift", "message": f"drift in {EVIL}", "check": EVIL})
    result.summary["drift"]["features"][0]["feature"] = EVIL
    result.summary["accuracy"]["per_class"] = {EVIL: {"support": 3, "recall": 1.0}}
    page = render_html(result)
    doc = parse(page)
    assert find_all(doc, "script") == []
    assert f"drift in {EVIL}" in text(by_id(page, "alerts"))
    assert table_rows(page, "drift")[0][0] == EVIL
    assert table_rows(page, "accuracy") == [[EVIL, "3", "1.000"]]
