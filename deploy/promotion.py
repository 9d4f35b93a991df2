"""Promotion and rollback as the CLI, Jenkins and the pipelines call them.

The policy itself (authenticated approver, gate and tests passed, signature, production still what
the approval saw) is enforced inside `Registry.promote` (registry.policy), the one function every
path calls, so a direct API call cannot skip it. This module only supplies what the approval was
given against and reports what happened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.actor import default_actor
from core.errors import UsageError
from core.settings import Settings
from deploy.model import Model
from registry.refs import version_number

READ_NOW = "now"  # --expect-production not given: production as read when the command starts


def parse_expected(text: str | None) -> int | str | None:
    """`--expect-production` as a version number, None (production was empty) or READ_NOW."""
    if text is None:
        return READ_NOW
    value = text.strip().lower().removeprefix("production:")
    if value in ("none", "empty"):
        return None
    version = version_number(value)
    if version is not None:
        return version
    raise UsageError(f"--expect-production {text!r}: give the production version number N, or none")


def promote(
    settings: Settings,
    ref: str,
    approved_by: str | None,
    actor: str,
    reason: str = "",
    expected_production: int | str | None = READ_NOW,
    approver_key: Path | None = None,
) -> dict[str, Any]:
    """Promote REF under the registry's policy; what happened (who approved, over which version)."""
    from registry import open_registry

    reg = open_registry(settings)
    expected = reg.pointer().get("current") if expected_production == READ_NOW else expected_production
    assert expected is None or isinstance(expected, int)
    promoted = reg.promote(
        ref,
        expected_production=expected,
        approved_by=approved_by,
        actor=actor,
        reason=reason,
        approver_key=approver_key_for(settings, approved_by, approver_key),
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


def approver_key_for(settings: Settings, approved_by: str | None, given: Path | None) -> Path | None:
    """The private key an approval is signed with: --approver-key, trust.approver_key, else the home
    key of --approved-by NAME (a laptop's <home>/keys/approver-NAME.pem). The key, not the name,
    decides who approves: the registry checks it against the trust policy."""
    from registry.trust import approver_key_path

    if given is not None:
        return Path(given)
    if settings.trust.approver_key:
        return Path(settings.trust.approver_key).expanduser()
    if approved_by:
        home = approver_key_path(settings, approved_by)
        return home if home.is_file() else None
    return None


def approve(
    settings: Settings, ref: str, approved_by: str | None, key: Path | None, actor: str, reason: str
) -> dict:
    """Sign an approval of REF without moving production (a re-approval after a key rotation)."""
    from registry import open_registry

    path = approver_key_for(settings, approved_by, key)
    if path is None:
        raise UsageError("approve needs your approver key: --approver-key PATH (or trust.approver_key)")
    return open_registry(settings).approve(ref, path, approved_by, reason, actor)


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
