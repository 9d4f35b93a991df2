"""Promotion and rollback as the CLI, Jenkins and the pipelines call them.

The policy itself (authenticated approver, gate and tests passed, signature, production still what
the approval saw) is enforced inside `Registry.promote` (registry.policy), the one function every
path calls, so a direct API call cannot skip it. This module only supplies what the approval was
given against and reports what happened.
"""

from __future__ import annotations

from typing import Any

from core.actor import default_actor
from core.errors import UsageError
from core.settings import Settings
from deploy.model import Model

READ_NOW = "now"  # --expect-production not given: production as read when the command starts


def parse_expected(text: str | None) -> int | str | None:
    """`--expect-production` as a version number, None (production was empty) or READ_NOW."""
    if text is None:
        return READ_NOW
    value = text.strip().lower().removeprefix("production:")
    if value in ("none", "empty"):
        return None
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise UsageError(f"--expect-production {text!r}: give the production version number N, or none")


def promote(
    settings: Settings,
    ref: str,
    approved_by: str | None,
    actor: str,
    reason: str = "",
    expected_production: int | str | None = READ_NOW,
) -> dict[str, Any]:
    """Promote REF under the registry's policy; what happened (who approved, over which version)."""
    from registry import open_registry

    reg = open_registry(settings)
    expected = reg.pointer().get("current") if expected_production == READ_NOW else expected_production
    assert expected is None or isinstance(expected, int)
    promoted = reg.promote(
        ref, expected_production=expected, approved_by=approved_by, actor=actor, reason=reason
    )
    approval = promoted.manifest.annotations.approvals[-1]
    return {
        "promoted": promoted.ref,
        "from": f"testing:{promoted.version}",
        "previous": expected,
        "approved_by": approval.approved_by,
        "identity": approval.identity,
        "signature": promoted.manifest.signed_by,
    }


def rollback(settings: Settings, actor: str, reason: str = "") -> dict[str, Any]:
    """Point production:current back at production:previous; what happened."""
    from registry import open_registry

    reg = open_registry(settings)
    before = reg.pointer().get("current")
    now = reg.rollback(actor=actor, reason=reason)
    return {"current": now.version, "rolled_back_from": before, "ref": now.ref}


def promote_passed_canary(
    settings: Settings, candidate: Model, canary_figures: dict[str, Any], promote_as: dict[str, Any]
) -> Model:
    """After a passed canary: promote a testing version under the registry's policy and return the
    production ref to roll out (a production or local ref is rolled out as it is). A refusal raises."""
    if not candidate.ref.startswith("testing:"):
        return candidate
    reason = promote_as.get("reason") or (
        f"canary passed: {canary_figures['requests']} requests, error rate {canary_figures['error_rate']:.1%}"
    )
    approved_by, expected = promote_as.get("approved_by"), promote_as["expected"]
    done = promote(settings, candidate.ref, approved_by, default_actor(), reason, expected)
    return Model(done["promoted"], candidate.name, candidate.version)
