"""Candidate vs production on the same test split: per-class metrics, confusion matrices, the gate.

Training evaluates production:current on the candidate's own test split and records the full
metrics in the candidate's gate (`gate.baseline.metrics`). When the production version compared
is that baseline, both columns come from one split. Otherwise production's own manifest metrics
are shown, with whether the two test splits are the same file (`test_split.json`'s sha256).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from registry.manifest import Manifest, to_json

SPLIT_FILE = "test_split.json"


@dataclass(frozen=True)
class Side:
    """One model's column: its ref, metrics on the compared split, and where the numbers come from."""

    ref: str
    version: int | None  # None: a manifest not (yet) registered
    metrics: dict[str, Any]
    source: str


@dataclass(frozen=True)
class ClassRow:
    """One class's precision, recall and F1 for both models."""

    label: str
    candidate: dict[str, float | None]
    production: dict[str, float | None]

    def delta(self, key: str) -> float | None:
        """candidate - production for one metric, None when either is missing."""
        a, b = self.candidate.get(key), self.production.get(key)
        return None if a is None or b is None else a - b


@dataclass(frozen=True)
class Comparison:
    """Everything the comparison page shows."""

    candidate: Side
    production: Side | None
    same_split: bool
    split_note: str
    classes: list[ClassRow] = field(default_factory=list)
    gate: dict[str, Any] = field(default_factory=dict)


def _split_sha(manifest: Manifest) -> str | None:
    entry = manifest.files.get(SPLIT_FILE)
    return entry.sha256 if entry else None


def _labels(metrics: dict[str, Any]) -> list[str]:
    return list(metrics.get("labels") or metrics.get("per_class") or [])


def _per_class(metrics: dict[str, Any], label: str) -> dict[str, float | None]:
    row = (metrics.get("per_class") or {}).get(label) or {}
    return {key: row.get(key) for key in ("precision", "recall", "f1", "support")}


def compare(candidate: Manifest, production: Manifest | None, production_ref: str = "") -> Comparison:
    """Side by side numbers for a candidate manifest and a production manifest (None: production empty)."""
    gate = to_json(candidate.gate) if candidate.gate else {}
    own = Side(f"testing:{candidate.version}", candidate.version, to_json(candidate.metrics), "")
    n = candidate.metrics.n
    if production is None:
        return Comparison(own, None, False, "production is empty: the gate skipped the comparison", gate=gate)
    baseline = candidate.gate.baseline if candidate.gate else None
    ref = production_ref or f"production:{production.version}"
    if baseline is not None and baseline.version == production.version and baseline.metrics is not None:
        side = Side(ref, production.version, to_json(baseline.metrics), "evaluated by the gate on this split")
        note = f"both evaluated on testing:{candidate.version}'s test split ({n} images)"
        same = True
    else:
        side = Side(ref, production.version, to_json(production.metrics), "its own manifest")
        same = _split_sha(candidate) is not None and _split_sha(candidate) == _split_sha(production)
        if same:
            note = f"the two versions were tested on the same test split ({SPLIT_FILE} identical)"
        else:
            note = (
                "the test splits differ, so the production column is its own test split's result; "
                f"the gate measured {(baseline.ref if baseline else None) or 'no production version'} "
                "on this split"
                + (
                    f" at accuracy {baseline.accuracy:.3f}"
                    if baseline and baseline.accuracy is not None
                    else ""
                )
            )
    labels = list(own.metrics.get("labels") or own.metrics.get("per_class") or [])
    labels += [
        c for c in side.metrics.get("labels") or side.metrics.get("per_class") or [] if c not in labels
    ]
    rows = [ClassRow(c, _per_class(own.metrics, c), _per_class(side.metrics, c)) for c in labels]
    return Comparison(own, side, same, note, rows, gate)


def shaded_matrix(metrics: dict[str, Any]) -> list[list[tuple[int, float]]]:
    """Confusion matrix cells as (count, share of the true class's row), for shading."""
    out = []
    for row in metrics.get("confusion_matrix") or []:
        total = sum(row) or 1
        out.append([(int(v), v / total) for v in row])
    return out
