"""Promotion policy: what must be true before a version may go to production."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mlops.errors import CheckFailed, MlopsError
from mlops.settings import Settings


def latest_tests(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The most recent `tests` annotation of a version, or None when it was never tested."""
    entries = (manifest.get("annotations") or {}).get("tests") or []
    return entries[-1] if entries else None


def policy_failures(manifest: dict[str, Any]) -> list[str]:
    """Every reason the version may not be promoted (empty: it may)."""
    reasons = []
    gate = manifest.get("gate") or {}
    if not gate:
        reasons.append("no gate decision recorded (train or retrain it through the pipeline)")
    elif not gate.get("passed"):
        failed = "; ".join(gate.get("reasons") or []) or "no reason recorded"
        reasons.append(f"its gate did not pass ({failed})")
    tests = latest_tests(manifest)
    ref = f"{manifest.get('area', 'testing')}:{manifest.get('version')}"
    if tests is None:
        reasons.append(f"it has no model test results (run: mlops test-model {ref})")
    elif not tests.get("passed"):
        s = tests.get("summary") or {}
        reasons.append(
            f"its latest model tests failed ({s.get('failed', '?')} failed, {s.get('errors', '?')} errors, "
            f"at {tests.get('at', '?')}; rerun: mlops test-model {ref})"
        )
    return reasons


def check_promotion(manifest: dict[str, Any], approved_by: str, settings: Settings) -> dict[str, Any]:
    """Refuse a promotion that breaks policy; return the evidence the approver saw."""
    if approved_by not in settings.deploy.approvers:
        raise MlopsError(
            f"{approved_by!r} is not an approver (approvers: {', '.join(settings.deploy.approvers)}); "
            "set deploy.approvers in mlops.toml or MLOPS_DEPLOY_APPROVERS"
        )
    name = f"{manifest.get('name', 'model')} version {manifest.get('version', '?')}"
    reasons = policy_failures(manifest)
    if reasons:
        raise CheckFailed(f"refusing to promote {name}: " + "; ".join(reasons))
    metrics = manifest.get("metrics") or {}
    summary: dict[str, Any] = {"accuracy": metrics.get("accuracy")}
    if metrics.get("per_class"):
        summary["recall"] = {c: m.get("recall") for c, m in metrics["per_class"].items()}
    tests = latest_tests(manifest) or {}
    return {
        "name": manifest.get("name"),
        "version": manifest.get("version"),
        "approved_by": approved_by,
        "approved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "metrics": summary,
        "gate": {"passed": True, "reasons": (manifest.get("gate") or {}).get("reasons", [])},
        "tests": {k: tests.get(k) for k in ("passed", "suite", "summary", "junit", "at", "actor")},
        "dataset": {k: (manifest.get("dataset") or {}).get(k) for k in ("uri", "fingerprint")},
        "code": manifest.get("code"),
    }
