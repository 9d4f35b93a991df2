"""Monitoring end to end on real data: a trained version under gunicorn, held-out and shifted traffic,
feedback through POST /feedback, and `mlops monitor` judging each window.

- held-out traffic (the version's own test split, and unseen images from the same generator) is not
  flagged: the false-alarm rate over repeated windows is measured and must be 0 of 20;
- the same images with a realistic shift (exposure, noise, inverted polarity, another scanner's
  resolution) are each flagged (exit 3), naming the statistic that moved;
- correct feedback keeps live accuracy above the gate; wrong labels drop it below and exit 3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from served_testlib import Deployment, give_feedback, iso, monitor, sample, send
from shifts import SHIFTS, shifted

from registry import Registry

pytestmark = pytest.mark.slow

WINDOW = 200  # requests per window
HELD_OUT_WINDOWS = 10  # per source: the test split, unseen images
RESULTS: dict[str, dict] = {}  # printed at the end of the module (-s) for the closing note


@pytest.fixture(scope="module")
def deployment(served_demo: Deployment) -> Iterator[Deployment]:
    """The session's served demo model (conftest.py); this module's results printed at its end."""
    yield served_demo
    if RESULTS:
        print("\nmonitoring on shifted traffic:\n" + json.dumps(RESULTS, indent=1))


def test_held_out_traffic_is_not_flagged(deployment: Deployment):
    """False-alarm rate over repeated windows of traffic the reference describes: 0 of 20."""
    windows = []
    for source, pool in (("test split", deployment.test_split), ("unseen", deployment.unseen)):
        for w in range(HELD_OUT_WINDOWS):
            chosen = sample(pool, WINDOW, seed=100 * len(windows) + w)
            since, until, _ = send(deployment.server, [p.read_bytes() for p, _ in chosen])
            windows.append((source, since, until))
    flagged = []
    for source, since, until in windows:
        code, summary = monitor(deployment, since, until, "--no-record")
        assert summary["records"] == WINDOW and summary["drift"]["judged"], summary
        rows = [r for r in summary["drift"]["features"] if r["psi"] is not None]
        worst = max(rows, key=lambda r: r["psi"])
        flagged.append(
            {
                "source": source,
                "exit": code,
                "drifted": summary["drift"]["drifted"],
                "max_psi": f"{worst['psi']} ({worst['feature']})",
                "min_p": round(min(r["p_value"] for r in rows if r["p_value"] is not None), 4),
                # What a PSI-only rule (no two-sample test) would have said.
                "psi_alone_alarms": any(r["psi"] >= 0.2 for r in rows),
            }
        )
    RESULTS["held-out windows"] = flagged
    alarms = [w for w in flagged if w["exit"] != 0]
    RESULTS["false-alarm rate"] = f"{len(alarms)}/{len(flagged)}"
    RESULTS["false-alarm rate with PSI alone"] = (
        f"{sum(w['psi_alone_alarms'] for w in flagged)}/{len(flagged)}"
    )
    assert alarms == [], flagged


@pytest.mark.parametrize(
    ("shift", "expected"),
    [
        ("exposure", {"mean"}),
        ("noise", {"std"}),
        ("inverted polarity", {"mean"}),
        ("scanner resolution", {"width", "height"}),
    ],
)
def test_shifted_traffic_is_flagged(deployment: Deployment, shift: str, expected: set[str]):
    chosen = sample(deployment.unseen, WINDOW, seed=list(SHIFTS).index(shift))
    since, until, _ = send(deployment.server, shifted([p for p, _ in chosen], shift))
    code, summary = monitor(deployment, since, until, "--no-record")
    RESULTS.setdefault("shifts", {})[shift] = {
        "exit": code,
        "drifted": summary["drift"]["drifted"],
        "psi": {r["feature"]: r["psi"] for r in summary["drift"]["features"] if r["drifted"]},
    }
    assert code == 3, summary["drift"]
    assert expected <= set(summary["drift"]["drifted"]), summary["drift"]["drifted"]


def test_feedback_with_wrong_labels_drops_live_accuracy_below_the_gate(deployment: Deployment):
    chosen = sample(deployment.unseen, WINDOW, seed=7)
    since, until, answers = send(deployment.server, [p.read_bytes() for p, _ in chosen])
    truth = [label for _, label in chosen]

    def give(labels: list[str]) -> None:
        give_feedback(deployment.server, answers[:100], labels)

    give(truth[:100])  # radiologists confirm the true classes
    code, summary = monitor(deployment, since, until, "--no-record")
    assert summary["accuracy"]["n"] == 100 and summary["accuracy"]["judged"]
    assert code == 0 and summary["accuracy"]["accuracy"] >= 0.8, (summary["alerts"], summary["accuracy"])

    classes = sorted({label for _, label in deployment.unseen})
    wrong = [classes[(classes.index(t) + 1) % 3] if i % 2 else t for i, t in enumerate(truth[:100])]
    give(wrong)  # later labels win: half of them now disagree with the data
    code, summary = monitor(deployment, since, until)
    RESULTS["feedback"] = {
        "exit": code,
        "live_accuracy": summary["accuracy"]["accuracy"],
        "alerts": summary["alerts"],
    }
    assert code == 3
    assert summary["accuracy"]["accuracy"] < 0.8 and summary["retrain_recommended"] is True
    assert summary["recorded"] is True  # on testing:1's annotations and in the audit log

    # Closing the loop (off by default): the same check with --trigger-retrain runs the data pipeline
    # on newly labelled data, which registers a fine-tuned testing:2 whose parent is testing:1.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env.update({"MLOPS_HOME": str(deployment.home), "MLOPS_REGISTRY": deployment.registry})
    env.update({"MLOPS_CONFIG": str(deployment.config), "MLOPS_TRAIN_FINE_TUNE_EPOCHS": "2"})
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    window = ["--since", iso(since), "--until", iso(until)]
    data = str(deployment.folder / "unseen")
    command = [sys.executable, "-m", "mlops.cli", "monitor", "--model", "testing:1", *window, "--json"]
    command += ["--no-record", "--trigger-retrain", "--data", data]
    done = subprocess.run(
        command, env=env, cwd=deployment.folder, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 3, done.stderr[-3000:]
    retrain = json.loads(done.stdout)["retrain"]  # stdout stays one JSON document
    assert retrain["data"] == data and retrain["exit_code"] in (0, 3), done.stderr[-3000:]
    assert "==> stage 1: retrain + gate + register" in done.stderr
    retrained = Registry.open(deployment.registry, "xray-classifier", cache_dir=deployment.folder / "c")
    manifest = retrained.resolve("testing:2").manifest
    assert manifest.parent is not None and manifest.parent.version == 1
    assert manifest.dataset.uri is not None and manifest.dataset.uri.endswith("unseen")
    RESULTS["feedback"]["retrain"] = {"pipeline_exit": retrain["exit_code"], "registered": "testing:2"}
