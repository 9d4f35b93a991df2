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
from monitoring.accuracy import against_reference, live_accuracy
from monitoring.deferral_rate import deferral_rate
from monitoring.drift import compare_profiles, drifted_features
from monitoring.estimate import estimate
from monitoring.live import load_window
from monitoring.window import Window
from registry.manifest import Manifest
from registry.monitoring_log import DEFAULT_TRAFFIC_CLASS

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


def _alert(statistic: str, message: str, check: str, **numbers: Any) -> dict[str, Any]:
    """One alert: which statistic, its numbers, a sentence, and what to check."""
    return {"statistic": statistic, "message": message, "check": check, **numbers}


_CHECKS = {
    "input": "the images reaching the API: scanner, export settings, resolution or a new source",
    "prediction": "the model's answers: the class mix of the population, or inputs the model misreads",
}


def _drift_alerts(rows: list[dict[str, Any]], m: Any) -> list[dict[str, Any]]:
    alerts = []
    for row in rows:
        if not row["drifted"]:
            continue
        p_text = f", p {row['p_value']:.2g} < {m.p_value}" if row["p_value"] is not None else ""
        effect = [f"{row['moved']:.0%} of the mass moved"] if row.get("moved") is not None else []
        if row.get("wasserstein_sd") is not None:
            effect.append(f"Wasserstein {row['wasserstein_sd']:.2f} reference SD")
        alerts.append(
            _alert(
                f"drift:{row['feature']}",
                f"drift in {row['feature']}: PSI {row['psi']:.3f} >= {m.psi_threshold}{p_text}"
                + (f" ({', '.join(effect)})" if effect else ""),
                _CHECKS[row["group"]],
                psi=row["psi"],
                p_value=row["p_value"],
                moved=row.get("moved"),
                wasserstein_sd=row.get("wasserstein_sd"),
            )
        )
    return alerts


def _held_out(manifest: Manifest) -> dict[str, Any]:
    """The version's held-out accuracy and per-class recall, from its manifest's metrics."""
    metrics = manifest.metrics
    return {
        "accuracy": metrics.accuracy,
        "recall": {name: m.recall for name, m in metrics.per_class.items()},
    }


def run_check(
    settings: Settings,
    ref: str,
    window: Window,
    now: float | None = None,
    traffic_class: str = DEFAULT_TRAFFIC_CLASS,
) -> CheckResult:
    """Compare REF's live TRAFFIC_CLASS predictions in WINDOW with its reference profile and held-out
    figures, and its live accuracy from feedback."""
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
    traffic = load_window(
        store, name, version, classes, window, now or time.time(), traffic_class=traffic_class
    )
    m = settings.monitor
    rows = compare_profiles(reference, traffic.profile, m.psi_threshold, m.p_value)
    accuracy = live_accuracy(traffic.confusion, classes, traffic.unmatched)
    held_out = _held_out(manifest)
    tested = against_reference(
        accuracy,
        held_out,
        alpha=m.alpha,
        tolerance=m.accuracy_tolerance,
        detect_drop=m.detect_drop,
        min_class_feedback=m.min_class_feedback,
    )
    estimated = estimate(
        traffic.confidence,
        reference["features"].get("confidence", []),
        held_out["accuracy"],
        alpha=m.alpha,
        min_drop=m.estimate_min_drop,
    )

    alerts: list[dict[str, Any]] = []
    drift_judged = traffic.profile["n"] >= m.min_records
    if drift_judged:
        alerts += _drift_alerts(rows, m)
    accuracy_judged = accuracy["n"] >= m.min_feedback
    below_gate = accuracy_judged and accuracy["accuracy"] < m.min_accuracy
    relabel = "the labelled cases the model got wrong (mlops monitor report), then retrain on them"
    if below_gate:
        alerts.append(
            _alert(
                "live_accuracy:gate",
                f"live accuracy {accuracy['accuracy']:.3f} < {m.min_accuracy} "
                f"on {accuracy['n']} labelled predictions",
                relabel,
                value=accuracy["accuracy"],
                threshold=m.min_accuracy,
                n=accuracy["n"],
            )
        )
    if accuracy_judged and tested.get("below"):
        low, high = tested["interval"]
        alerts.append(
            _alert(
                "live_accuracy:held_out",
                f"live accuracy {accuracy['accuracy']:.3f} (interval {low:.3f}-{high:.3f}, "
                f"{accuracy['n']} labels) is significantly below the held-out "
                f"{tested['held_out_accuracy']:.3f} - {m.accuracy_tolerance} (p {tested['p_value']:.2g} "
                f"< {m.alpha})",
                "which inputs it gets wrong: a partial shift (a new scanner, rotated or cropped images) "
                "drags accuracy down before the class mix moves; " + relabel,
                value=accuracy["accuracy"],
                held_out=tested["held_out_accuracy"],
                p_value=tested["p_value"],
                n=accuracy["n"],
            )
        )
    for label, row in accuracy["per_class"].items():
        if not accuracy_judged or row["support"] < m.min_class_feedback:
            continue
        if row["recall"] < m.min_recall:
            alerts.append(
                _alert(
                    f"live_recall:{label}:gate",
                    f"live recall of {label} {row['recall']:.3f} < {m.min_recall} "
                    f"({row['support']} labelled)",
                    relabel,
                    value=row["recall"],
                    threshold=m.min_recall,
                    n=row["support"],
                )
            )
        elif (tested.get("classes") or {}).get(label, {}).get("below"):
            held = tested["classes"][label]
            alerts.append(
                _alert(
                    f"live_recall:{label}:held_out",
                    f"live recall of {label} {row['recall']:.3f} ({row['support']} labelled) is "
                    "significantly "
                    f"below its held-out {held['held_out_recall']:.3f} (p {held['p_value']:.2g})",
                    f"the {label} cases it misses: " + relabel,
                    value=row["recall"],
                    held_out=held["held_out_recall"],
                    p_value=held["p_value"],
                    n=row["support"],
                )
            )
    if drift_judged and estimated.get("dropped"):
        low, high = estimated["interval"]
        alerts.append(
            _alert(
                "estimated_accuracy",
                f"estimated accuracy (mean confidence, no labels) {estimated['accuracy']:.3f} "
                f"(interval {low:.3f}-{high:.3f}) dropped {estimated['drop']:.3f} from the reference's "
                f"{estimated['reference']:.3f} (p {estimated['p_value']:.2g} < {m.alpha})",
                "the inputs the model is unsure about; label a sample through POST /feedback to measure it",
                value=estimated["accuracy"],
                reference=estimated["reference"],
                p_value=estimated["p_value"],
            )
        )
    deferrals = deferral_rate(
        manifest.deferral,
        traffic.deferrals[1],
        traffic.deferrals[0],
        alpha=m.alpha,
        min_records=m.min_records,
    )
    if deferrals["higher"]:
        alerts.append(
            _alert(
                "deferral_rate",
                f"deferral rate {deferrals['rate']:.3f} ({deferrals['deferred']} of {deferrals['n']}) is "
                f"significantly above the {deferrals['expected']:.3f} expected from the "
                f"{deferrals['split']} split (p {deferrals['p_value']:.2g} < {m.alpha})",
                "the inputs it defers on: a new source or population the model is unsure about; "
                "radiologists read every deferred case, so their workload rose too",
                value=deferrals["rate"],
                expected=deferrals["expected"],
                p_value=deferrals["p_value"],
                n=deferrals["n"],
            )
        )

    excluded = ", ".join(f"{n} {c}" for c, n in sorted(traffic.other_classes.items()))
    note = ""
    if not drift_judged:
        note = f"{traffic.profile['n']} {traffic_class} predictions < min_records {m.min_records}"
        if excluded:
            note += f" ({excluded} left out; --traffic-class CLASS checks those)"
    summary = {
        "model": name,
        "ref": ref,
        "version": version,
        "window": window.to_dict(),
        "traffic_class": traffic_class,
        "records": traffic.profile["n"],
        "other_versions": traffic.other_versions,
        "other_traffic_classes": traffic.other_classes,
        "batches": traffic.batches,
        "damaged_batches": traffic.damaged,
        "reference": {"split": reference.get("split"), "n": reference["n"], **held_out},
        "drift": {
            "judged": drift_judged,
            "note": note,
            "drifted": drifted_features(rows) if drift_judged else [],
            "features": rows,
        },
        "accuracy": {
            "judged": accuracy_judged,
            "note": ""
            if accuracy_judged
            else f"{accuracy['n']} labelled predictions < min_feedback {m.min_feedback}",
            "feedback_received": traffic.feedback_received,
            **accuracy,
            "against_held_out": tested,
        },
        "estimate": estimated,
        "deferral": deferrals,
        "thresholds": {
            "psi": m.psi_threshold,
            "p_value": m.p_value,
            "alpha": m.alpha,
            "accuracy_tolerance": m.accuracy_tolerance,
            "estimate_min_drop": m.estimate_min_drop,
            "detect_drop": m.detect_drop,
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
