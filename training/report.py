"""The HTML report with plots (confusion matrix, training curves, per-class metrics)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt

from core.templates import render
from registry.manifest import Criterion, Gate, Manifest, Metrics, to_json


def _confusion(metrics: dict, path: Path) -> None:
    labels, matrix = metrics["labels"], metrics["confusion_matrix"]
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=30)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center")
    ax.set_title("Confusion matrix (test split)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _curves(history: dict, path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2))
    for key in ("loss", "val_loss"):
        if history.get(key):
            left.plot(range(1, len(history[key]) + 1), history[key], label=key)
    for key in ("accuracy", "val_accuracy"):
        if history.get(key):
            right.plot(range(1, len(history[key]) + 1), history[key], label=key)
    for ax, title in ((left, "loss"), (right, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _per_class(metrics: dict, path: Path) -> None:
    labels = list(metrics["per_class"])
    fig, ax = plt.subplots(figsize=(6, 3.2))
    width = 0.27
    for k, key in enumerate(("precision", "recall", "f1")):
        values = [metrics["per_class"][c][key] for c in labels]
        ax.bar([i + (k - 1) * width for i in range(len(labels))], values, width, label=key)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylim(0, 1.05)
    ax.legend(loc="lower right")
    ax.set_title("Per-class metrics (test split)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _reliability(calibration: dict, path: Path) -> None:
    """Reliability diagram: accuracy against confidence per bin, before and after temperature scaling."""
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot([0, 1], [0, 1], "k:", label="perfectly calibrated")
    for key, label in (("reliability_before", "before"), ("reliability_after", "after")):
        rows = [r for r in calibration.get(key) or [] if r["count"]]
        ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], "o-", label=label)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.legend(loc="upper left")
    ax.set_title(f"Reliability (test split), T = {calibration['temperature']:.2f}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


PLOTS = {
    "confusion": "plots/confusion_matrix.png",
    "curves": "plots/training_curves.png",
    "per_class": "plots/per_class_metrics.png",
    "reliability": "plots/reliability.png",
}


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def comparison_view(comparison: dict, candidate: dict, production: dict | None) -> dict:
    """A paired comparison as rows for people: candidate, production, difference and its interval."""

    def figure(metrics: dict | None, cls: str | None) -> str:
        if not metrics:
            return "n/a"
        value = (
            metrics.get("accuracy")
            if cls is None
            else (metrics.get("per_class", {}).get(cls) or {}).get("recall")
        )
        return "n/a" if value is None else f"{value:.3f}"

    rows = []
    for name, cls, row in [("accuracy", None, comparison["accuracy"])] + [
        (f"recall {c}", c, r) for c, r in comparison.get("recall", {}).items()
    ]:
        rows.append(
            {
                "name": name,
                "candidate": figure(candidate, cls),
                "production": figure(production, cls),
                "difference": _signed(row.get("difference")),
                "interval": f"[{_signed(row.get('low'))}, {_signed(row.get('high'))}]",
                "support": row.get("support"),
            }
        )
    return {
        **comparison,
        "rows": rows,
        "verdict": comparison.get("verdict") or "",
        "confidence_text": f"{comparison.get('confidence') or 0.95:.0%}",
        "test_text": (
            f"McNemar's exact test: p = {comparison.get('p_value', 1.0):.3g} "
            f"({comparison.get('candidate_only')} image(s) only the candidate gets right, "
            f"{comparison.get('baseline_only')} only production); intervals from "
            f"{comparison.get('resamples')} paired bootstrap resamples (seed {comparison.get('seed')})."
        ),
    }


def report_context(manifest: Manifest) -> dict:
    """What the report shows, as plain data for templates/report.html."""
    metrics, gate = manifest.metrics, manifest.gate
    assert gate is not None  # build_manifest required it
    ds, code, parent = manifest.dataset, manifest.code, manifest.parent
    source, checks = ds.source, ds.validation
    reference = checks.reference if checks else None
    return {
        "name": manifest.name,
        "mode": manifest.params.mode,
        "params": str(to_json(manifest.params)),
        "accuracy": metrics.accuracy,
        "n": metrics.n,
        "per_class": to_json(metrics.per_class),
        "subgroups": [{**to_json(g), "too_few": g.too_few} for g in metrics.subgroups],
        "gate": {
            "passed": gate.passed,
            # every optional field present (None when unset): the template reads them all
            "criteria": [dict.fromkeys(Criterion.OPTIONAL) | c for c in to_json(gate.criteria)],
            "notes": list(gate.notes),
            "confidence": "95 %",
            "comparisons": [
                comparison_view(
                    to_json(c),
                    to_json(metrics),
                    to_json(_baseline_metrics(gate, c.on)),
                )
                for c in gate.comparisons
            ],
        },
        "calibration": to_json(manifest.calibration) if manifest.calibration else None,
        "dataset": {
            "uri": ds.uri,
            "fingerprint": str(ds.fingerprint)[:16],
            "split": str(dict(ds.split)),
            "n_skipped": len(ds.skipped),
            "skipped": list(ds.skipped[:50]),
        },
        "source": {
            "kind": str(source.kind or "folder"),
            "where": str(source.repo or source.uri or ds.uri),
            "revision": str(source.revision or "none (a plain folder: the fingerprint names it)"),
            "parents": list(source.parents or []),
        },
        "validation": {
            "basis": f"against {reference}'s training data" if reference else "no reference model",
            "findings": [*checks.warnings, *checks.notes] if checks else [],
        },
        "code": [str(v) for v in (code.commit, code.repo, code.build_url) if v],
        "parent": parent.ref if parent else None,
        "plots": PLOTS,
        "deferral": to_json(manifest.deferral) if manifest.deferral is not None else None,
    }


def _baseline_metrics(gate: Gate, on: str) -> Metrics | None:
    """Production's metrics on the split a comparison was made on (the test split's are the baseline's)."""
    if on == "test split" and gate.baseline is not None:
        return gate.baseline.metrics
    return None


def write_report(folder: Path, manifest: Manifest, history: dict) -> Path:
    """Write plots/*.png and report.html into folder; returns the report path."""
    (folder / "plots").mkdir(parents=True, exist_ok=True)
    metrics = to_json(manifest.metrics)
    _confusion(metrics, folder / PLOTS["confusion"])
    _curves(history, folder / PLOTS["curves"])
    _per_class(metrics, folder / PLOTS["per_class"])
    if manifest.calibration is not None:
        _reliability(to_json(manifest.calibration), folder / PLOTS["reliability"])
    path = folder / "report.html"
    path.write_text(render("training", "report.html", **report_context(manifest)))
    return path
