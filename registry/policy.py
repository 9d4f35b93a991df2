"""The promotion policy, enforced inside Registry.promote (the one function every path calls).

A version may go to production only when all of these hold:
- with a trust policy (registry.trust): an approval signed by an approver key of that policy (see
  registry.chain); the settings below are not consulted;
- with no trust policy (a weaker mode `mlops promote`/`deploy` warn about): the approver is the OS
  account (core.identity; never an environment variable), any `--approved-by` claim agrees with it,
  and it is listed in deploy.approvers (or mapped by deploy.approver_accounts);
- its gate passed and its latest model test run passed;
- its signature verifies (registry.signing; an unsigned version only where signing is not required);
- production is still the version the approval was given against (else a conflict).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.identity import SOURCE_OS, Identity
from registry.errors import PolicyError
from registry.manifest import Manifest, TestRun, to_json
from registry.signing import SigningConfig
from registry.trust import TrustPolicy, policy_for

if TYPE_CHECKING:
    from core.settings import Settings

OWNER_ACCOUNT = "@owner"  # in deploy.approver_accounts: the OS user owning a local registry folder


@dataclass(frozen=True)
class Policy:
    """Who may approve and which keys sign and verify, as the settings say.

    With a trust policy (registry.trust) the keys decide: model.sig must verify with one of its
    trainer keys, signing is required unless it allows unsigned versions, approvals are signed
    statements, and `approvers`/`approver_accounts` are not consulted.
    """

    approvers: tuple[str, ...] = ()
    approver_accounts: tuple[str, ...] = ()
    signing: SigningConfig = field(default_factory=SigningConfig)
    trust: TrustPolicy | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        """The policy of [deploy] approvers/approver_accounts and [signing], or of the trust policy."""
        trust = policy_for(settings)
        signing = SigningConfig.from_settings(settings)
        if trust is not None:
            signing = SigningConfig(
                signing.private_key, trust.trainer_key_files(), not trust.allow_unsigned, signing.password
            )
        return cls(settings.deploy.approvers, settings.deploy.approver_accounts, signing, trust)


def latest_tests(manifest: Manifest) -> TestRun | None:
    """The most recent `tests` annotation of a version, or None when it was never tested."""
    return manifest.annotations.latest_tests


def policy_failures(manifest: Manifest) -> list[str]:
    """Every reason the version's evidence forbids promotion (empty: it allows it)."""
    reasons = []
    gate = manifest.gate
    if gate is None:
        reasons.append("no gate decision recorded (train or retrain it through the pipeline)")
    elif not gate.passed:
        failed = "; ".join(gate.reasons) or "no reason recorded"
        reasons.append(f"its gate did not pass ({failed})")
    tests = latest_tests(manifest)
    ref = manifest.ref
    if tests is None:
        reasons.append(f"it has no model test results (run: mlops test-model {ref})")
    elif not tests.passed:
        s = tests.summary
        reasons.append(
            f"its latest model tests failed ({_count(s.failed)} failed, {_count(s.errors)} errors, "
            f"at {tests.at or '?'}; rerun: mlops test-model {ref})"
        )
    return reasons


def _count(n: int | None) -> str:
    return "?" if n is None else str(n)


def _accounts(pairs: tuple[str, ...]) -> dict[str, set[str]]:
    """deploy.approver_accounts `ACCOUNT=APPROVER` pairs as {account: approvers}."""
    mapping: dict[str, set[str]] = {}
    for pair in pairs:
        account, sep, approver = pair.partition("=")
        if not sep or not account.strip() or not approver.strip():
            raise PolicyError(f"deploy.approver_accounts entry {pair!r} is not ACCOUNT=APPROVER")
        mapping.setdefault(account.strip(), set()).add(approver.strip())
    return mapping


def local_owner(registry_uri: str) -> str | None:
    """The OS account owning a file:// registry folder (None for gs:// or a missing folder)."""
    from core.identity import os_account

    if registry_uri.startswith("gs://"):
        return None
    path = Path(registry_uri.removeprefix("file://"))
    try:
        return os_account(os.stat(path).st_uid)
    except OSError:
        return None


def authorize(identity: Identity, claimed: str | None, policy: Policy, registry_uri: str) -> str:
    """The approver this identity approves as; PolicyError when it may not approve (or claims otherwise)."""
    accounts = _accounts(policy.approver_accounts)
    roles = {identity.name} | accounts.get(identity.name, set())
    if identity.source == SOURCE_OS and local_owner(registry_uri) == identity.name:
        roles |= accounts.get(OWNER_ACCOUNT, set())
    who = f"{identity.name!r} ({identity.source})"
    if claimed:
        if claimed not in roles:
            raise PolicyError(
                f"--approved-by {claimed!r} disagrees with the authenticated approver {who}; "
                "approve as yourself, or map your account with deploy.approver_accounts ACCOUNT=APPROVER "
                "(with a trust policy: sign with your approver key)"
            )
        approver = claimed
    else:
        listed = sorted(r for r in roles if r in policy.approvers)
        approver = listed[0] if len(listed) == 1 else identity.name
    if approver not in policy.approvers:
        names = ", ".join(policy.approvers) or "none configured"
        raise PolicyError(
            f"{approver!r} is not an approver (approvers: {names}; authenticated as {who}); "
            "set deploy.approvers in mlops.toml or MLOPS_DEPLOY_APPROVERS"
        )
    return approver


def evidence(manifest: Manifest, approver: str) -> dict[str, Any]:
    """What the approver approved: metrics, gate, latest tests, dataset, code."""
    metrics = manifest.metrics
    summary: dict[str, Any] = {"accuracy": metrics.accuracy}
    if metrics.per_class:
        summary["recall"] = {c: m.recall for c, m in metrics.per_class.items()}
    tests = latest_tests(manifest)
    gate = manifest.gate
    return {
        "name": manifest.name,
        "version": manifest.version,
        "approved_by": approver,
        "approved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "metrics": summary,
        "gate": {"passed": manifest.gate_passed, "reasons": list(gate.reasons) if gate else []},
        "tests": {
            k: to_json(getattr(tests, k)) if tests else None
            for k in ("passed", "suite", "summary", "junit", "at", "actor")
        },
        "dataset": {"uri": manifest.dataset.uri, "fingerprint": manifest.dataset.fingerprint},
        "code": to_json(manifest.code),
    }


def check_evidence(manifest: Manifest) -> None:
    """PolicyError listing every reason the version's gate and tests forbid promotion."""
    reasons = policy_failures(manifest)
    if reasons:
        name = (
            f"{manifest.name or 'model'} version {manifest.version if manifest.version is not None else '?'}"
        )
        raise PolicyError(f"refusing to promote {name}: " + "; ".join(reasons))
