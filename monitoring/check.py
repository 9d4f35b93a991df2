"""One monitoring check: a version's live traffic and feedback in a window against its reference profile."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import MlopsError
from core.image_stats import profile_from_json
from core.safe_paths import safe_join
from core.settings import Settings
from monitoring.accuracy import live_accuracy
from monitoring.drift import compare_profiles, drifted_features
from monitoring.live import load_feedback, load_predictions
from monitoring.window import Window
from registry.manifest import Manifest

PROFILE_FILE = "reference_profile.json"


@dataclass
class CheckResult:
    """The JSON-ready summary, plus both profiles (with their arrays) for the report's plots."""

    summary: dict[str, Any]
    reference: dict[str, Any]
    live: dict[str, Any]

    @property
    def passed(self) -> bool:
        """No threshold crossed."""
        return not self.summary["alerts"]


def load_reference(folder: Path, manifest: Manifest, ref: str) -> dict[str, Any]:
    """The reference profile registered with a version (fetched and sha256-verified into FOLDER)."""
    name = manifest.reference.file if manifest.reference else PROFILE_FILE
    path = safe_join(folder, name, f"{ref}: reference profile")  # the manifest names a file of the version
    if not path.is_file():
        raise MlopsError(
            f"{ref} has no reference profile ({name}); it was registered before monitoring existed: "
            "train or retrain a new version (mlops train / mlops retrain) to get one"
        )
    try:
        return profile_from_json(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise MlopsError(f"{ref}: reference profile {name} is not valid ({exc})") from None


def run_check(settings: Settings, ref: str, window: Window, now: float | None = None) -> CheckResult:
    """Compare REF's live predictions in WINDOW with its reference profile, and its live accuracy."""
    from registry import open_registry
    from registry.store import open_store

    registry = open_registry(settings)
    local = registry.fetch(ref)
    manifest = local.manifest
    name = manifest.name or registry.name
    version = manifest.version if manifest.version is not None else local.version
    classes = list(manifest.classes)
    reference = load_reference(Path(local.dir), manifest, ref)

    store = open_store(settings.monitor_store_uri)
    # Feedback first: only the predictions it labels need their id kept.
    truth = load_feedback(store, name, window, until=now or time.time())
    traffic = load_predictions(store, name, version, classes, window, labelled=truth)
    m = settings.monitor
    rows = compare_profiles(reference, traffic.profile, m.psi_threshold, m.p_value)
    accuracy = live_accuracy(traffic.labels, truth, classes)

    alerts: list[str] = []
    drift_judged = traffic.profile["n"] >= m.min_records
    if drift_judged:
        for row in rows:
            if row["drifted"]:
                p_text = f", p {row['p_value']:.2g} < {m.p_value}" if row["p_value"] is not None else ""
                alerts.append(f"drift in {row['feature']}: PSI {row['psi']:.3f} >= {m.psi_threshold}{p_text}")
    accuracy_judged = accuracy["n"] >= m.min_feedback
    below_gate = accuracy_judged and accuracy["accuracy"] < m.min_accuracy
    if below_gate:
        alerts.append(
            f"live accuracy {accuracy['accuracy']:.3f} < {m.min_accuracy} "
            f"on {accuracy['n']} labelled predictions"
        )
    if accuracy_judged:
        for label, row in accuracy["per_class"].items():
            if row["support"] >= m.min_class_feedback and row["recall"] < m.min_recall:
                alerts.append(
                    f"live recall of {label} {row['recall']:.3f} < {m.min_recall} ({row['support']} labelled)"
                )

    summary = {
        "model": name,
        "ref": ref,
        "version": version,
        "window": window.to_dict(),
        "records": traffic.profile["n"],
        "other_versions": traffic.other_versions,
        "reference": {"split": reference.get("split"), "n": reference["n"]},
        "drift": {
            "judged": drift_judged,
            "note": ""
            if drift_judged
            else f"{traffic.profile['n']} predictions < min_records {m.min_records}",
            "drifted": drifted_features(rows) if drift_judged else [],
            "features": rows,
        },
        "accuracy": {
            "judged": accuracy_judged,
            "note": ""
            if accuracy_judged
            else f"{accuracy['n']} labelled predictions < min_feedback {m.min_feedback}",
            "feedback_received": len(truth),
            **accuracy,
        },
        "thresholds": {
            "psi": m.psi_threshold,
            "p_value": m.p_value,
            "min_records": m.min_records,
            "min_feedback": m.min_feedback,
            "min_accuracy": m.min_accuracy,
            "min_recall": m.min_recall,
            "min_class_feedback": m.min_class_feedback,
        },
        "alerts": alerts,
        "passed": not alerts,
        "retrain_recommended": bool(below_gate),
    }
    return CheckResult(summary, reference, traffic.profile)
