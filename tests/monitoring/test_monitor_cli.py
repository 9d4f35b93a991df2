"""`mlops monitor` on a registry with a profiled version and synthetic prediction-log and feedback batches."""

from __future__ import annotations

import json
import re
import time
from email import message_from_bytes, policy
from pathlib import Path

import numpy as np
import pytest
from manifests import lineage
from monitor_testlib import CLASSES, records, reference_profile, register_version

from registry import open_registry
from registry.monitoring_log import write_batch
from registry.store import open_store

HOUR = 3600.0


@pytest.fixture
def version(settings, tmp_path) -> int:
    """testing:1 with a reference profile of 400 images."""
    return register_version(open_registry(settings), tmp_path, reference_profile())


def log(settings, batch: list[dict], kind: str = "predictions") -> None:
    store = open_store(settings.monitor_store_uri)
    for start in range(0, len(batch), 100):
        write_batch(store, "xray-classifier", kind, batch[start : start + 100])


def run(cli, *args: str):
    result = cli("monitor", "--model", "testing:1", "--window", "1h", "--json", *args)
    return result, (json.loads(result.out) if result.out.strip().startswith("{") else None)


def test_traffic_like_the_reference_passes_and_is_recorded(cli, settings, version):
    log(settings, records(np.random.default_rng(1), 400, version, time.time() - 600))
    result, summary = run(cli)
    assert result.code == 0, result.err + result.out
    assert summary["records"] == 400 and summary["drift"]["judged"] and summary["drift"]["drifted"] == []
    assert summary["passed"] is True and summary["alerts"] == []
    assert summary["accuracy"]["judged"] is False  # no feedback yet
    features = {row["feature"] for row in summary["drift"]["features"]}
    assert features == {
        "width",
        "height",
        "format",
        "mean",
        "std",
        "intensity_hist",
        "class_shares",
        "confidence",
    }
    report = Path(summary["report"]).read_text()
    assert "PASSED" in report
    # One image size and one format in both: those plots would be single bars, so they are left out.
    plots = set(re.findall(r"<img alt='([a-z_]+)' src='data:image/png;base64,", report))
    assert plots == {"mean", "std", "confidence", "intensity_hist", "class_shares"}, plots
    registry = open_registry(settings)
    (entry,) = registry.resolve("testing:1").manifest.annotations.monitoring
    assert entry.passed is True and entry.records == 400 and entry.actor
    assert any(e["action"] == "annotate:monitoring" for e in registry.audit())


def test_shifted_inputs_exit_3_naming_the_drifted_statistics(cli, settings, version):
    log(settings, records(np.random.default_rng(2), 300, version, time.time() - 600, mean=0.62, width=1024))
    result, summary = run(cli)
    assert result.code == 3, result.err
    assert {"mean", "width"} <= set(summary["drift"]["drifted"])
    mean = [a for a in summary["alerts"] if a["statistic"] == "drift:mean"]
    assert mean and mean[0]["message"].startswith("drift in mean: PSI") and mean[0]["check"]
    # Effect sizes that do not saturate: the mean moved by 0.17 with a reference spread of about 0.05.
    assert 2.5 < mean[0]["wasserstein_sd"] < 4.5 and 0.5 < mean[0]["moved"] <= 1
    human = cli("monitor", "--model", "testing:1", "--window", "1h", "--no-record")
    assert human.code == 3 and "\n  - drift in mean" in human.out and "    check: " in human.out
    assert "DRIFT" in human.out


def test_too_few_predictions_are_not_judged(cli, settings, version):
    log(settings, records(np.random.default_rng(3), 50, version, time.time() - 600, mean=0.9))
    result, summary = run(cli)
    assert result.code == 0
    assert (
        summary["drift"]["judged"] is False
        and "50 production predictions < min_records 200" in summary["drift"]["note"]
    )


def test_the_window_selects_records_and_other_versions_are_skipped(cli, settings, version):
    now = time.time()
    rng = np.random.default_rng(4)
    log(settings, records(rng, 300, version, now - 3 * HOUR, mean=0.9))  # shifted, but outside the window
    log(settings, records(rng, 300, version, now - 600))
    log(settings, records(rng, 30, 99, now - 300))
    result, summary = run(cli)
    assert result.code == 0, result.out
    assert summary["records"] == 300 and summary["other_versions"] == {"99": 30}
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 4 * HOUR))
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 2 * HOUR))
    result = cli(
        "monitor", "--model", "testing:1", "--since", since, "--until", until, "--json", "--no-record"
    )
    assert result.code == 3 and json.loads(result.out)["records"] == 300


def test_wrong_labels_drop_live_accuracy_below_the_gate(cli, settings, version):
    rng = np.random.default_rng(5)
    logged = records(rng, 300, version, time.time() - 600)
    log(settings, logged)
    # Radiologists disagree with 40% of 100 labelled predictions.
    feedback = []
    for i, record in enumerate(logged[:100]):
        wrong = CLASSES[(CLASSES.index(record["label"]) + 1) % 3]
        feedback.append(
            {"id": record["id"], "label": wrong if i % 5 < 2 else record["label"], "t": time.time()}
        )
    log(settings, feedback, "feedback")
    result, summary = run(cli)
    assert result.code == 3
    accuracy = summary["accuracy"]
    assert accuracy["judged"] and accuracy["n"] == 100 and accuracy["accuracy"] == pytest.approx(0.6)
    assert summary["retrain_recommended"] is True
    assert any(a["message"].startswith("live accuracy 0.600 < 0.8 on 100") for a in summary["alerts"])


def test_correct_labels_keep_live_accuracy_and_the_latest_label_wins(cli, settings, version):
    rng = np.random.default_rng(6)
    logged = records(rng, 300, version, time.time() - 600)
    log(settings, logged)
    first = [
        {"id": r["id"], "label": CLASSES[(CLASSES.index(r["label"]) + 1) % 3], "t": time.time() - 60}
        for r in logged[:60]
    ]
    corrected = [{"id": r["id"], "label": r["label"], "t": time.time() - 30} for r in logged[:60]]
    log(settings, first + corrected, "feedback")
    result, summary = run(cli)
    assert result.code == 0, summary["alerts"]
    assert summary["accuracy"]["accuracy"] == 1.0 and summary["accuracy"]["n"] == 60


def test_notify_emails_the_product_owner_on_an_alert(cli, settings, version):
    log(settings, records(np.random.default_rng(7), 300, version, time.time() - 600, std=0.35))
    result, summary = run(cli, "--notify")
    assert result.code == 3
    (eml,) = sorted(settings.outbox.glob("*.eml"))
    assert summary["notified"] == str(eml)
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert message["To"] == settings.notify.product_owner
    assert "monitoring ALERT" in message["Subject"] and "drift in std" in message["Subject"]
    attachments = [part.get_filename() for part in message.iter_attachments()]
    assert attachments == [summary["report"].rsplit("/", 1)[-1]]


def test_notify_alert_sends_nothing_when_all_is_well(cli, settings, version):
    log(settings, records(np.random.default_rng(8), 300, version, time.time() - 600))
    assert run(cli, "--notify")[0].code == 0
    assert not settings.outbox.exists() or not list(settings.outbox.glob("*.eml"))


def test_usage_and_clear_errors(cli, settings, version, tmp_path):
    assert cli("monitor", "--window", "soon").code == 2
    assert "not a duration" in cli("monitor", "--model", "testing:1", "--window", "soon").err
    bad = cli("monitor", "--model", "testing:1", "--trigger-retrain")
    assert bad.code == 2 and "--trigger-retrain needs --data" in bad.err
    since_after_until = cli(
        "monitor", "--model", "testing:1", "--since", "2025-01-02", "--until", "2025-01-01"
    )
    assert since_after_until.code == 2 and "empty" in since_after_until.err
    missing = cli("monitor", "--model", "testing:7")
    assert missing.code == 1 and "testing:7" in missing.err


def test_a_version_without_a_reference_profile_is_a_clear_error(cli, settings, tmp_path):
    src = tmp_path / "old"
    src.mkdir()
    (src / "model.keras").write_bytes(b"x")
    open_registry(settings).register(
        src, lineage(**{"model_file": "model.keras", "classes": CLASSES}), actor="t"
    )
    result = cli("monitor", "--model", "testing:1")
    assert result.code == 1 and "no reference profile" in result.err and "retrain" in result.err
