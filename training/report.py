"""The HTML report with plots (confusion matrix, training curves, per-class metrics)."""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt

from registry.manifest import Manifest, to_json


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


def write_report(folder: Path, manifest: Manifest, history: dict) -> Path:
    """Write plots/*.png and report.html into folder; returns the report path."""
    plots = folder / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    metrics, gate = manifest.metrics, manifest.gate
    assert gate is not None  # build_manifest required it
    _confusion(to_json(metrics), plots / "confusion_matrix.png")
    _curves(history, plots / "training_curves.png")
    _per_class(to_json(metrics), plots / "per_class_metrics.png")
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(c)}</td><td>{m.precision:.3f}</td><td>{m.recall:.3f}</td>"
        f"<td>{m.f1:.3f}</td><td>{m.support}</td></tr>"
        for c, m in metrics.per_class.items()
    )
    criteria = "".join(
        f"<tr class='{'pass' if c.passed else 'fail'}'><td>{esc(c.name)}</td>"
        f"<td>{c.value:.3f}</td><td>&ge; {c.threshold:.3f}</td>"
        f"<td>{'PASS' if c.passed else 'FAIL'}</td></tr>"
        for c in gate.criteria
    )
    notes = "".join(f"<li>{esc(n)}</li>" for n in gate.notes)
    ds, code = manifest.dataset, manifest.code
    parent = manifest.parent
    verdict = "pass" if gate.passed else "fail"
    code_line = " ".join(esc(str(v)) for v in (code.commit, code.repo, code.build_url) if v) or "unknown"
    skipped = "".join(f"<li>{esc(r['path'])}: {esc(r['reason'])}</li>" for r in ds.skipped[:50])
    source = ds.source
    where = source.repo or source.uri or ds.uri
    revision = source.revision or "none (a plain folder: the fingerprint names it)"
    parents = f", parent commit(s) {', '.join(source.parents)}" if source.parents else ""
    checks = ds.validation
    findings = [*checks.warnings, *checks.notes] if checks else []
    data_checks = "".join(f"<li>{esc(line)}</li>" for line in findings) or "<li>no findings</li>"
    reference = checks.reference if checks else None
    basis = f"against {reference}'s training data" if reference else "no reference model"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Model report: {esc(str(manifest.name))}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:1em auto}}td,th{{padding:.2em .6em;
border-bottom:1px solid #ddd}}.pass{{color:#176317}}.fail{{color:#a11;font-weight:bold}}</style></head>
<body>
<h1>Model report: {esc(str(manifest.name))} ({esc(str(manifest.params.mode))})</h1>
<p>Gate: <strong class="{verdict}">{"PASSED" if gate.passed else "FAILED"}</strong>
&mdash; test accuracy {metrics.accuracy:.3f} on {metrics.n} images.</p>
<table><tr><th>criterion</th><th>value</th><th>needs</th><th></th></tr>{criteria}</table>
<ul>{notes}</ul>
<h2>Per-class metrics</h2>
<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>{rows}</table>
<img src="plots/per_class_metrics.png" alt="per-class metrics">
<h2>Confusion matrix</h2><img src="plots/confusion_matrix.png" alt="confusion matrix">
<h2>Training curves</h2><img src="plots/training_curves.png" alt="training curves">
<h2>Lineage</h2>
<ul><li>dataset: {esc(str(ds.uri))} (fingerprint {esc(str(ds.fingerprint)[:16])}&hellip;,
split {esc(str(dict(ds.split)))}, {len(ds.skipped)} file(s) skipped)</li>
<li>dataset source: {esc(str(source.kind or "folder"))} {esc(str(where))},
revision {esc(str(revision))}{esc(parents)}</li>
<li>data validation ({esc(basis)}): <ul>{data_checks}</ul></li>
<li>code: {code_line}</li>
<li>skipped files: <ul>{skipped or "<li>none</li>"}</ul></li>
<li>parent: {esc(str(parent.ref)) if parent else "none (trained from scratch)"}</li>
<li>params: {esc(str(to_json(manifest.params)))}</li></ul>
</body></html>
"""
    path = folder / "report.html"
    path.write_text(page)
    return path
