"""A registry with realistic versions for the browser's tests: metrics, gates, tests, approvals, promotions.

Versions go through the real Registry (register, annotate, promote, rollback); only the training
run is stood in for by its outputs (random model bytes, a real PNG plot, a report, a test split).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from manifests import lineage
from PIL import Image

from core.identity import os_account
from registry import Registry
from registry.manifest import Deployment, TestRun, TestSummary

CLASSES = ["COVID", "Normal", "Viral Pneumonia"]
SPLIT_A = [
    {"path": f"{c}/{i}.png", "sha256": f"{k}{i:063d}", "label": c}
    for k, c in enumerate(CLASSES)
    for i in range(3)
]
SPLIT_B = [*SPLIT_A, *({"path": f"new/{i}.png", "sha256": f"9{i:063d}", "label": "Normal"} for i in range(6))]


def metrics(matrix: list[list[int]]) -> dict[str, Any]:
    """Manifest metrics from a confusion matrix (rows: true class)."""
    m = np.array(matrix)
    per_class = {}
    for i, c in enumerate(CLASSES):
        tp, predicted, support = int(m[i, i]), int(m[:, i].sum()), int(m[i].sum())
        p = tp / predicted if predicted else 0.0
        r = tp / support if support else 0.0
        per_class[c] = {
            "precision": p,
            "recall": r,
            "f1": 2 * p * r / (p + r) if p + r else 0.0,
            "support": support,
        }
    return {
        "accuracy": float(np.trace(m) / m.sum()),
        "per_class": per_class,
        "confusion_matrix": matrix,
        "labels": CLASSES,
        "n": int(m.sum()),
    }


def gate(own: dict[str, Any], baseline: dict[str, Any] | None, floor: float = 0.6) -> dict[str, Any]:
    """A gate decision shaped like training.gate.decide's."""

    def criterion(name: str, value: float, threshold: float) -> dict[str, Any]:
        return {"name": name, "passed": value >= threshold, "value": value, "threshold": threshold}

    criteria = [criterion("accuracy", own["accuracy"], 0.8)]
    criteria += [criterion(f"recall:{c}", row["recall"], floor) for c, row in own["per_class"].items()]
    if baseline:
        criteria.append(criterion("not_worse_than_production", own["accuracy"], baseline["accuracy"] - 0.02))
        criteria[-1]["baseline_ref"] = baseline["ref"]
    reasons = [f"{c['name']} {c['value']:.3f} < {c['threshold']:.3f}" for c in criteria if not c["passed"]]
    notes = [] if baseline else ["production comparison skipped: production is empty"]
    return {
        "passed": not reasons,
        "reasons": reasons,
        "criteria": criteria,
        "baseline": baseline,
        "notes": notes,
    }


def run_folder(tmp: Path, n: int, split: list[dict[str, Any]]) -> Path:
    """A training run's outputs: model, report, a real PNG plot, the test split."""
    folder = tmp / f"run-{n}"
    (folder / "plots").mkdir(parents=True, exist_ok=True)
    (folder / "model.keras").write_bytes(os.urandom(512))
    report = f"<html><body><h1>Report {n}</h1><img src='plots/confusion_matrix.png' alt='cm'></body></html>"
    (folder / "report.html").write_text(report)
    (folder / "model_card.md").write_text(f"# Model card: version {n}\n\n## Intended use\ntriage\n")
    pixels = np.full((60, 90, 3), 240, np.uint8)
    pixels[10:50, 10 + n % 40 : 30 + n % 40] = (31, 79, 196)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    (folder / "plots" / "confusion_matrix.png").write_bytes(out.getvalue())
    (folder / "test_split.json").write_text(json.dumps(split))
    return folder


def manifest(own: dict[str, Any], decision: dict[str, Any], build: int | None = None) -> dict[str, Any]:
    """What training hands the registry."""
    build_url = f"https://jenkins.example.com/job/xray/{build}/" if build else None
    return {
        "model_file": "model.keras",
        "classes": CLASSES,
        "preprocessing": {"image_size": 64, "channels": 1},
        "metrics": own,
        "gate": decision,
        "code": {"commit": "0a1b2c3d4e5f", "repo": "git@example.com:xray.git", "build_url": build_url},
        "dataset": {
            "uri": "gs://xray-data/v1",
            "fingerprint": "f" * 64,
            "class_counts": {c: 30 for c in CLASSES},
            "split": {"train": 63, "val": 13, "test": 14},
        },
        "params": {"architecture": "small_cnn", "epochs": 30, "mode": "train"},
        "frameworks": {"python": "3.11", "tensorflow": "2.21.0"},
        "parent": None,
    }


def annotation_of_tests(passed: int, failed: int) -> TestRun:
    """A `tests` annotation as `mlops test-model` records it."""
    summary = TestSummary(passed=passed, failed=failed, errors=0, skipped=0)
    return TestRun(passed=failed == 0, suite="unit_testing", summary=summary, junit="reports/junit.xml")


def baseline(version: int, own: dict[str, Any]) -> dict[str, Any]:
    """The gate's record of production on the candidate's split."""
    return {"ref": f"production:{version}", "version": version, "accuracy": own["accuracy"], "metrics": own}


def approver_env() -> dict[str, str]:
    """Settings under which this process's OS account approves as product-owner (no trust policy)."""
    return {"MLOPS_DEPLOY_APPROVER_ACCOUNTS": f"{os_account()}=product-owner"}


def promote_now(reg: Registry, ref: str, actor: str, reason: str) -> None:
    """Promote over production as it is now (the approver is the test's authenticated identity)."""
    reg.promote(ref, expected_production=reg.pointer()["current"], actor=actor, reason=reason)


def story(reg: Registry, tmp: Path) -> dict[str, int]:
    """Three versions: v1 promoted, v2 promoted then rolled back, v3 the tested candidate vs v1."""
    m1 = metrics([[4, 1, 0], [0, 5, 0], [1, 0, 3]])
    v1 = reg.register(
        run_folder(tmp, 1, SPLIT_A), lineage(**manifest(m1, gate(m1, None), 11)), actor="jenkins"
    ).version
    reg.annotate(f"testing:{v1}", annotation_of_tests(14, 0), actor="jenkins")
    promote_now(reg, f"testing:{v1}", actor="alice", reason="first model")
    deployment = Deployment(target="local", result="ok", detail="smoke passed")
    reg.annotate(f"production:{v1}", deployment, actor="jenkins")

    m2 = metrics([[5, 0, 0], [1, 4, 0], [0, 1, 3]])
    body = manifest(m2, gate(m2, baseline(v1, m1)), 12)
    v2 = reg.register(run_folder(tmp, 2, SPLIT_A), lineage(**body), actor="jenkins").version
    reg.annotate(f"testing:{v2}", annotation_of_tests(14, 0), actor="jenkins")
    promote_now(reg, f"testing:{v2}", actor="alice", reason="better recall")
    reg.rollback(actor="bob", reason="smoke test failed")

    # The candidate, trained on more data (a bigger test split): production:1 was evaluated on that
    # split by the gate, with numbers different from its own manifest's.
    m3 = metrics([[5, 0, 0], [0, 5, 0], [3, 0, 2]])
    body = manifest(m3, gate(m3, baseline(v1, metrics([[4, 1, 0], [0, 5, 0], [1, 0, 4]]))), 13)
    v3 = reg.register(run_folder(tmp, 3, SPLIT_B), lineage(**body), actor="jenkins").version
    reg.annotate(f"testing:{v3}", annotation_of_tests(12, 2), actor="jenkins")
    return {"v1": v1, "v2": v2, "v3": v3}


def many(reg: Registry, tmp: Path, count: int) -> None:
    """COUNT small versions (one shared run folder), each registered through the real registry."""
    own = metrics([[4, 1, 0], [0, 5, 0], [1, 0, 3]])
    folder = run_folder(tmp, 0, SPLIT_A)
    body = manifest(own, gate(own, None))
    for _ in range(count):
        reg.register(folder, lineage(**body), actor="bulk")
