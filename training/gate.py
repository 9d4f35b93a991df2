"""The gate: accuracy ≥ threshold, every class's recall ≥ floor, not worse than production.

Each decision states its error rate (docs/architecture.md, "The gate"):
- a class's recall passes when the lower bound of its Wilson interval reaches the floor; a class with
  too few test images for even a perfect recall to show that fails as "too few images to judge"
  (fail closed: a class the gate cannot judge is one it cannot vouch for);
- the comparison with production is paired on the same images (training/paired.py): a regression is
  a bootstrap interval of candidate - production (accuracy, or one class's recall) lying wholly below
  -regression_tolerance, i.e. the candidate is worse by more than the tolerance at the stated
  confidence. McNemar's exact test is recorded beside it as the test of "any difference at all".
"""

from __future__ import annotations

from typing import Any

from core.settings import GateSettings
from training.paired import min_support, wilson_interval

TOO_FEW = "too few images to judge"


def decide(
    metrics: dict,
    gate: GateSettings,
    baseline: dict | None,
    comparison: dict | None = None,
    calibration: dict | None = None,
    reference: dict | None = None,
) -> dict:
    """The gate decision as stored in the manifest.

    baseline is production's {"ref", "version", "accuracy", "metrics"} on the same test split and
    comparison its paired comparison (training.paired.compare); calibration is {"ece_after", ...};
    reference is the locked reference set's check (training.stages.reference_check).
    """
    criteria = [
        {
            "name": "accuracy",
            "passed": metrics["accuracy"] >= gate.accuracy_threshold,
            "value": metrics["accuracy"],
            "threshold": gate.accuracy_threshold,
        }
    ]
    criteria.extend(_recall_floor(label, row, gate) for label, row in metrics["per_class"].items())
    notes = []
    if calibration is not None:
        criteria.append(_calibration(calibration, gate))
    if baseline is None:
        notes.append("production comparison skipped: production is empty")
    else:
        if comparison is None:
            raise ValueError("a production baseline needs its paired comparison (training.paired.compare)")
        criteria.extend(regression_criteria(comparison, gate, baseline["ref"], "not_worse_than_production"))
        notes.append(verdict(comparison, gate, baseline["ref"], "test split"))
    comparisons = []
    if comparison is not None and baseline is not None:
        comparisons.append(
            {"on": "test split", "baseline_ref": baseline["ref"], **comparison, "verdict": notes[-1]}
        )
    if reference is not None:
        key, on = reference["key"], reference["on"]
        criteria.append(
            {
                "name": f"{key}:accuracy",
                "passed": reference["metrics"]["accuracy"] >= gate.accuracy_threshold,
                "value": reference["metrics"]["accuracy"],
                "threshold": gate.accuracy_threshold,
                "support": reference["n"],
            }
        )
        if reference["comparison"] is not None:
            ref = reference["baseline"]["ref"]
            criteria.extend(
                regression_criteria(reference["comparison"], gate, ref, f"{key}:not_worse_than_production")
            )
            notes.append(verdict(reference["comparison"], gate, ref, on))
            comparisons.append(
                {"on": on, "baseline_ref": ref, **reference["comparison"], "verdict": notes[-1]}
            )
        else:
            notes.append(f"{on}: production comparison skipped: production is empty")
    reasons = [_reason(c) for c in criteria if not c["passed"]]
    out = {
        "passed": not reasons,
        "reasons": reasons,
        "criteria": criteria,
        "baseline": baseline,
        "notes": notes,
    }
    if comparisons:
        out["comparisons"] = comparisons
    if reference is not None:
        out["reference"] = {
            "version": reference["version"],
            "fingerprint": reference["fingerprint"],
            "n": reference["n"],
            "metrics": reference["metrics"],
            "baseline": reference["baseline"],
        }
    return out


def _recall_floor(label: str, row: dict, gate: GateSettings) -> dict:
    support, recall = int(row["support"]), float(row["recall"])
    low, high = wilson_interval(round(recall * support), support, gate.confidence)
    judged = support >= min_support(gate.recall_floor, gate.confidence)
    return {
        "name": f"recall:{label}",
        "passed": judged and low >= gate.recall_floor,
        "value": low,  # what is compared: the recall the test split shows at the stated confidence
        "threshold": gate.recall_floor,
        "estimate": recall,
        "low": low,
        "high": high,
        "support": support,
        "test": "wilson",
        **({} if judged else {"note": TOO_FEW}),
    }


def _calibration(calibration: dict, gate: GateSettings) -> dict:
    """ECE after scaling at most max_ece, unless a perfectly calibrated model could show it by chance."""
    ece, noise = calibration["ece_after"], calibration.get("ece_noise")
    within_noise = noise is not None and ece <= noise
    return {
        "name": "calibration_ece",
        "passed": ece <= gate.max_ece or within_noise,
        "value": ece,
        "threshold": gate.max_ece,
        "direction": "<=",
        "high": noise,  # what chance alone reaches at the gate's confidence
        "support": calibration.get("test_n"),
        "test": "consistency_resampling",
        **(
            {"note": "above max_ece but within chance on this few images"}
            if within_noise and ece > gate.max_ece
            else {}
        ),
    }


def regression_criteria(comparison: dict, gate: GateSettings, ref: str, prefix: str) -> list[dict]:
    """No-regression criteria against REF named PREFIX[:recall:<class>]: accuracy, each class recall."""
    rows = [(prefix, comparison["accuracy"])]
    rows += [(f"{prefix}:recall:{c}", row) for c, row in comparison["recall"].items() if row["support"]]
    out = []
    for name, row in rows:
        high = row["high"]
        out.append(
            {
                "name": name,
                # the upper bound is what a regression must undercut: the candidate may be this much better
                "passed": high is None or high >= -gate.regression_tolerance,
                "value": high,
                "threshold": -gate.regression_tolerance,
                "estimate": row["difference"],
                "low": row["low"],
                "high": high,
                "support": row["support"],
                "test": comparison["bootstrap"],
                "p_value": comparison["p_value"] if name == prefix else None,
                "baseline_ref": ref,
            }
        )
    return out


def _ci(row: dict[str, Any], confidence: float) -> str:
    return f"{row['difference']:+.3f}, {confidence:.0%} CI [{row['low']:+.3f}, {row['high']:+.3f}]"


def verdict(comparison: dict, gate: GateSettings, ref: str, on: str) -> str:
    """The comparison in words, as the approver reads it."""
    conf, tol = comparison["confidence"], gate.regression_tolerance
    acc = comparison["accuracy"]
    worse = [
        f"recall {_ci(row, conf)} on class {c}"
        for c, row in comparison["recall"].items()
        if row["high"] is not None and row["high"] < -tol
    ]
    if acc["high"] is not None and acc["high"] < -tol:
        worse.insert(0, f"accuracy {_ci(acc, conf)}")
    mcnemar = f"McNemar exact p = {comparison['p_value']:.3g}"
    if worse:
        return f"regression against {ref} on the {on}: " + "; ".join(worse) + f" ({mcnemar})"
    return f"no evidence of regression against {ref} on the {on}: accuracy {_ci(acc, conf)} ({mcnemar})"


def _reason(criterion: dict) -> str:
    name, value, threshold = criterion["name"], criterion["value"], criterion["threshold"]
    if "not_worse_than_production" in name:
        return (
            f"{name}: worse than production ({criterion['baseline_ref']}) beyond tolerance: "
            f"candidate - production = {criterion['estimate']:+.3f}, "
            f"CI [{criterion['low']:+.3f}, {criterion['high']:+.3f}] lies below {threshold:+.3f}"
        )
    if criterion.get("note") == TOO_FEW:
        return (
            f"{name}: {TOO_FEW} ({criterion['support']} test image(s); the floor {threshold:.3f} needs more)"
        )
    if criterion.get("test") == "wilson":
        return (
            f"{name} {criterion['estimate']:.3f} on {criterion['support']} images: "
            f"lower bound {value:.3f} < {threshold:.3f}"
        )
    if criterion.get("direction") == "<=":
        chance = f" and above chance ({criterion['high']:.3f})" if criterion.get("high") is not None else ""
        return f"{name} {value:.3f} > {threshold:.3f}{chance}"
    return f"{name} {value:.3f} < {threshold:.3f}"


def describe(decision: dict) -> list[str]:
    """Human lines: one per criterion and note, for the console and the report."""
    lines = []
    for c in decision["criteria"]:
        mark = "PASS" if c["passed"] else "FAIL"
        if c["value"] is None:
            lines.append(f"  {mark} {c['name']}: no images to compare")
            continue
        op = c.get("direction", ">=")
        lines.append(f"  {mark} {c['name']}: {c['value']:.3f} (needs {op} {c['threshold']:.3f})")
    lines.extend(f"  NOTE {note}" for note in decision.get("notes", []))
    return lines
