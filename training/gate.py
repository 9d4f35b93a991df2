"""The gate: accuracy ≥ threshold, every class's recall ≥ floor, not worse than production."""

from __future__ import annotations

from core.settings import GateSettings


def decide(metrics: dict, gate: GateSettings, baseline: dict | None) -> dict:
    """The gate decision as stored in the manifest; baseline is {"ref", "accuracy"} or None."""
    criteria = [
        {
            "name": "accuracy",
            "passed": metrics["accuracy"] >= gate.accuracy_threshold,
            "value": metrics["accuracy"],
            "threshold": gate.accuracy_threshold,
        }
    ]
    for label, row in metrics["per_class"].items():
        criteria.append(
            {
                "name": f"recall:{label}",
                "passed": row["recall"] >= gate.recall_floor,
                "value": row["recall"],
                "threshold": gate.recall_floor,
            }
        )
    notes = []
    if baseline is None:
        notes.append("production comparison skipped: production is empty")
    else:
        floor = baseline["accuracy"] - gate.regression_tolerance
        criteria.append(
            {
                "name": "not_worse_than_production",
                "passed": metrics["accuracy"] >= floor,
                "value": metrics["accuracy"],
                "threshold": floor,
                "baseline_ref": baseline["ref"],
            }
        )
    reasons = [_reason(c) for c in criteria if not c["passed"]]
    return {
        "passed": not reasons,
        "reasons": reasons,
        "criteria": criteria,
        "baseline": baseline,
        "notes": notes,
    }


def _reason(criterion: dict) -> str:
    name, value, threshold = criterion["name"], criterion["value"], criterion["threshold"]
    if name == "not_worse_than_production":
        return (
            f"accuracy {value:.3f} is worse than production ({criterion['baseline_ref']}) "
            f"beyond tolerance: needs >= {threshold:.3f}"
        )
    return f"{name} {value:.3f} < {threshold:.3f}"


def describe(decision: dict) -> list[str]:
    """Human lines: one per criterion and note, for the console and the report."""
    lines = []
    for c in decision["criteria"]:
        mark = "PASS" if c["passed"] else "FAIL"
        lines.append(f"  {mark} {c['name']}: {c['value']:.3f} (needs >= {c['threshold']:.3f})")
    lines.extend(f"  NOTE {note}" for note in decision.get("notes", []))
    return lines
