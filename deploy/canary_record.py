"""What a rollout leaves on its version: the deployment annotation, and a canary's verdict as an audit
event plus an annotation (the email shows it). A registry hiccup while recording never changes the
rollout's result: it is a warning on stderr."""

from __future__ import annotations

import sys
from typing import Any

from core.actor import default_actor
from core.errors import EXIT_ERROR, EXIT_FAILED_CHECK, MlopsError
from core.settings import Settings


def record_deployment(settings: Settings, ref: str, target: str, ok: bool, detail: Any) -> None:
    """Annotate REF with a deployment to TARGET: ok, or rolled back, and the rollout's DETAIL."""
    try:
        from registry import open_registry
        from registry.manifest import Deployment

        data = Deployment(target=target, result="ok" if ok else "rolled-back", detail=detail)
        open_registry(settings).annotate(ref, data, actor=default_actor())
    except (MlopsError, OSError) as exc:
        print(f"deploy: warning: could not record the deployment on {ref}: {exc}", file=sys.stderr)


def canary_decision(outcome: Any) -> tuple[str, int]:
    """What a finished canary (local or k8s outcome) decided, and the exit code that says so."""
    if outcome.promoted:
        return "promoted", 0
    if outcome.pulled:
        return "pulled", EXIT_FAILED_CHECK
    return "rollout-failed", EXIT_ERROR  # passed, but the full rollout after it did not


def canary_record(outcome: Any, decision: str, **extra: Any) -> dict[str, Any]:
    """The verdict, figures, split and decision of a canary, as recorded and printed."""
    return {
        "verdict": outcome.verdict.status,
        "decision": decision,
        "reasons": outcome.verdict.reasons,
        "figures": outcome.verdict.figures,
        "split": outcome.split,
        "detail": outcome.detail,
        **extra,
    }


def record_canary(settings: Settings, ref: str, record: dict[str, Any]) -> None:
    """The canary's RECORD as an audit event (why: its reasons), and an annotation on a registry REF."""
    try:
        from registry import open_registry
        from registry.manifest import CanaryVerdict, load

        reg = open_registry(settings)
        why = "; ".join(record["reasons"]) or "every threshold held"
        reg.record_event("canary", default_actor(), why, ref=ref, **record)
        if ":" in ref:
            reg.annotate(ref, load(CanaryVerdict, record), actor=default_actor())
    except (MlopsError, OSError) as exc:
        print(f"deploy: warning: could not record the canary of {ref}: {exc}", file=sys.stderr)


def finish_canary(
    settings: Settings, ref: str, target: str, outcome: Any, rollout_detail: Any, **extra: Any
) -> tuple[dict[str, Any], int]:
    """Record a finished canary on REF (and its full rollout to TARGET, when it got that far); its
    record and exit code (0 promoted, 3 pulled, 1 the rollout after a pass failed)."""
    decision, code = canary_decision(outcome)
    record = canary_record(outcome, decision, **extra)
    record_canary(settings, ref, record)
    if outcome.rollout is not None:
        record_deployment(settings, ref, target, outcome.rollout.ok, rollout_detail)
    return record, code
