"""Promotion and rollback, and the policy every promotion path calls (the CLI, Jenkins, pipelines).

The registry only knows how to copy a version and swap the production pointer; what must be true
before it may (approver, gate, model tests) and what is recorded with it (the approval) live here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core.errors import CheckFailed, MlopsError
from core.settings import Settings


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


def promote(settings: Settings, ref: str, approved_by: str, actor: str, reason: str = "") -> dict[str, Any]:
    """Check the policy, copy a testing version to production, record the approval; what happened."""
    from registry import RefError, open_registry

    reg = open_registry(settings)
    mv = reg.resolve(ref)
    if mv.area != "testing":
        raise RefError(f"promote takes a testing ref (testing:N or testing:latest), not {ref!r}")
    evidence = check_promotion(mv.manifest, approved_by, settings)
    before = reg.pointer().get("current")
    # Pin the number resolved above: testing:latest may move while we work.
    promoted = reg.promote(mv.ref, actor=actor, reason=reason, evidence=evidence)
    approval = {"approved_by": approved_by, "reason": reason, "evidence": evidence}
    reg.annotate(promoted.ref, "approvals", approval, actor=actor)
    return {"promoted": promoted.ref, "from": mv.ref, "previous": before, "approved_by": approved_by}


def rollback(settings: Settings, actor: str, reason: str = "") -> dict[str, Any]:
    """Point production:current back at production:previous; what happened."""
    from registry import open_registry

    reg = open_registry(settings)
    before = reg.pointer().get("current")
    now = reg.rollback(actor=actor, reason=reason)
    return {"current": now.version, "rolled_back_from": before, "ref": now.ref}
