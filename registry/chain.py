"""The chain of signed decisions behind a version, verified against the trust policy, failing closed.

`verify_chain` is the one check every point of use calls (promote, deploy, `mlops serve`, each API
worker at load): a version may serve only when
- its `model.sig` verifies with a trainer key (the files and manifest are what the trainer signed),
- a trainer-signed gate statement says the gate passed,
- the newest tester-signed model test statement over a required suite, with the API smoke tests
  run, says the tests passed (runs of other suites, or without the API, do not count),
- an approver-signed approval names this version's digest and the production it replaced.
Each statement's subject must be this version's digest; anything else in the registry is ignored.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import CheckFailed
from registry import attestations
from registry.errors import SignatureError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from registry.core import Registry
    from registry.manifest import FileEntry
    from registry.trust import TrustPolicy
    from registry.version import LocalModel


class TrustError(SignatureError, CheckFailed):
    """A version's chain of signed decisions does not verify under the trust policy (exit code 3)."""


@dataclass(frozen=True)
class Step:
    """One link of the chain: what was checked, whether it holds, who signed it, when."""

    kind: str
    ok: bool
    detail: str
    signer: str | None = None
    key_id: str | None = None
    at: str | None = None
    required: bool = True  # a testing candidate need not be tested or approved yet to be served for its tests

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("kind", "ok", "detail", "signer", "key_id", "at", "required")}


@dataclass
class Verdict:
    """What verify_chain found for one version."""

    ref: str
    digest: str | None
    steps: list[Step] = field(default_factory=list)
    allowed_unsigned: bool = False

    @property
    def ok(self) -> bool:
        return self.allowed_unsigned or (bool(self.steps) and all(s.ok for s in self.steps if s.required))

    @property
    def problems(self) -> list[str]:
        return [f"{s.kind}: {s.detail}" for s in self.steps if not s.ok and s.required]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "digest": self.digest,
            "verified": self.ok,
            "allowed_unsigned": self.allowed_unsigned,
            "steps": [s.to_dict() for s in self.steps],
        }

    def require(self) -> None:
        """Raise TrustError naming every broken link (nothing when the chain verifies)."""
        if not self.ok:
            raise TrustError(
                f"{self.ref} is not trusted: " + "; ".join(self.problems) + " (see: mlops registry verify "
                f"{self.ref})"
            )


def local_digest(local: LocalModel) -> str | None:
    """The digest of a fetched registry version (None for a plain local file)."""
    return getattr(local, "digest", None)


def _read(reg: Registry, version: int, policy: TrustPolicy, digest: str) -> tuple[list[Any], list[Step]]:
    """Every attestation of the version a policy key signed about this digest; notes on the others."""
    trusted = {**policy.keys("trainer"), **policy.keys("tester"), **policy.keys("approver")}
    found, notes = [], []
    for key, data in attestations.read_all(reg.store, reg.name, version):
        try:
            att = attestations.open_envelope(data, trusted, key.rsplit("/", 1)[-1])
        except SignatureError as exc:
            notes.append(Step("ignored", True, str(exc)))
            continue
        if att.subject != digest:
            notes.append(
                Step("ignored", True, f"{att.key}: names digest {att.subject[:16]}, not this version")
            )
            continue
        found.append(att)
    return found, notes


_ROLE = {"provenance": "trainer", "gate": "trainer", "tests": "tester", "approval": "approver"}


def _signed(policy: TrustPolicy, atts: list[Any], kind: str) -> list[tuple[Any, str]]:
    """Attestations of KIND whose key is in the policy for that kind's role, with the signer's name."""
    out = []
    for att in atts:
        signer = policy.signer(att.key_id, _ROLE.get(kind, ""))
        if att.kind == kind and signer is not None:
            out.append((att, signer.name))
    return sorted(out, key=lambda pair: str(pair[0].predicate.get("at", "")))


def _count(value: object) -> str:
    """A count from a signed predicate (protobuf Struct turns every number into a float): 12.0 -> 12."""
    return str(int(value)) if isinstance(value, int | float) and float(value).is_integer() else "?"


def _tests_step(policy: TrustPolicy, atts: list[Any]) -> Step:
    runs = _signed(policy, atts, "tests")
    if not runs:
        return Step("tests", False, "no model test result signed by a tester key")
    counted = [
        (a, who)
        for a, who in runs
        if a.predicate.get("suite_digest") in policy.required_suites and a.predicate.get("with_api") is True
    ]
    if not counted:
        last = runs[-1][0].predicate
        why = []
        suite = str(last.get("suite_digest"))
        if suite not in policy.required_suites:
            why.append(
                f"suite {suite} is not a required suite of {policy.path} (a changed suite: once a person "
                f"has reviewed it, accept it with: mlops keys accept-suite {suite}; then rerun mlops "
                "test-model --with-api)"
            )
        if last.get("with_api") is not True:
            why.append("the API smoke tests did not run (--with-api)")
        return Step("tests", False, "no signed test run of a required suite with the API: " + ", ".join(why))
    att, who = counted[-1]
    p = att.predicate
    summary = p.get("summary") or {}
    figures = f"{_count(summary.get('passed'))} passed, {_count(summary.get('failed'))} failed"
    if p.get("passed") is not True:
        return Step(
            "tests", False, f"the latest required suite run failed ({figures})", who, att.key_id, p.get("at")
        )
    return Step(
        "tests", True, f"required suite passed with the API ({figures})", who, att.key_id, p.get("at")
    )


def _approval_step(policy: TrustPolicy, atts: list[Any], version: int) -> Step:
    approvals = [
        (a, w) for a, w in _signed(policy, atts, "approval") if a.predicate.get("version") == version
    ]
    if not approvals:
        names = ", ".join(policy.names("approver")) or "none in the policy"
        return Step("approval", False, f"no approval signed by an approver key (approvers: {names})")
    att, who = approvals[-1]
    over = att.predicate.get("expected_production")
    replaced = "an empty production" if over is None else f"production:{int(over)}"
    return Step(
        "approval",
        True,
        f"approved over {replaced}: {att.predicate.get('reason') or ''}".rstrip(": "),
        who,
        att.key_id,
        att.predicate.get("at"),
    )


def verify_chain(
    reg: Registry, ref: str, policy: TrustPolicy, local: LocalModel | None = None, full: bool | None = None
) -> Verdict:
    """Verify the signed chain of the version REF names under POLICY; a Verdict (never raises on a break).

    local: the version as already fetched (and its signature verified) by the caller; else it is
    fetched here from the registry, not the cache. full: require the tests and the approval too
    (default: for a production ref; a testing candidate served for its own tests, staging or a canary
    needs only the trainer's signature and gate; promotion asks for the full chain).
    """
    mv = reg.resolve(ref)
    full = mv.area == "production" if full is None else full
    verdict = Verdict(mv.ref, None)
    if mv.area == "local":
        verdict.steps.append(Step("signature", False, "a local model file carries no signed chain"))
        verdict.allowed_unsigned = policy.allow_unsigned
        return verdict
    try:
        local = local or reg.fetch(mv.ref, refresh=True)
    except SignatureError as exc:
        verdict.steps.append(Step("signature", False, str(exc)))
        verdict.allowed_unsigned = policy.allow_unsigned
        return verdict
    verdict.digest = local_digest(local)
    sig = local.signature or {}
    trainer = policy.signer(str(sig.get("key_id")), "trainer") if sig.get("status") == "signed" else None
    if trainer is None or verdict.digest is None:
        status = sig.get("status", "unsigned")
        verdict.steps.append(Step("signature", False, f"model.sig is {status}, not signed by a trainer key"))
        verdict.allowed_unsigned = policy.allow_unsigned
        return verdict
    verdict.steps.append(
        Step(
            "signature",
            True,
            "model.sig verifies",
            trainer.name,
            trainer.key_id,
            local.manifest.created_at,
        )
    )
    atts, notes = _read(reg, mv.version, policy, verdict.digest)
    gates = _signed(policy, atts, "gate")
    if not gates:
        verdict.steps.append(Step("gate", False, "no gate decision signed by a trainer key"))
    else:
        att, who = gates[-1]
        passed = att.predicate.get("passed") is True
        verdict.steps.append(
            Step(
                "gate",
                passed,
                "gate passed" if passed else "gate did not pass",
                who,
                att.key_id,
                att.predicate.get("at"),
            )
        )
    for att, who in _signed(policy, atts, "provenance")[-1:]:
        verdict.steps.append(
            Step("provenance", True, "training provenance", who, att.key_id, att.predicate.get("at"))
        )
    for step in (_tests_step(policy, atts), _approval_step(policy, atts, mv.version)):
        verdict.steps.append(step if full else dataclasses.replace(step, required=False))
    verdict.steps.extend(notes)
    verdict.allowed_unsigned = policy.allow_unsigned
    return verdict


def check_trust(
    reg: Registry, ref: str, local: LocalModel | None, actor: str, attempted: str
) -> Verdict | None:
    """At a point of use: verify the chain when a trust policy is in force; refuse (audited) if broken."""
    policy = reg.policy.trust
    if policy is None:
        return None
    verdict = verify_chain(reg, ref, policy, local)
    if not verdict.ok:
        error = TrustError(
            f"{attempted} refused: " + verdict.ref + " is not trusted: " + "; ".join(verdict.problems)
        )
        if not ref.startswith(("/", ".")) and ":" in ref:
            check = next((s.kind for s in verdict.steps if s.required and not s.ok), None)
            reg.record_refusal(
                attempted, actor, str(error), ref=verdict.ref, digest=verdict.digest, check=check
            )
        raise error
    return verdict


def attest(
    reg: Registry,
    version: int,
    digest: str,
    kind: str,
    predicate: dict[str, Any],
    key: Path,
    password: str = "",
) -> str:
    """Sign a statement of KIND about the version with a private key and store it; the object key."""
    payload = attestations.statement(kind, f"{reg.name}:{version}", digest, {"version": version, **predicate})
    return attestations.put(reg.store, reg.name, version, kind, attestations.sign(payload, key, password))


def manifest_digest(files: Mapping[str, FileEntry], manifest: bytes) -> str:
    """The version digest from a manifest's file list and the manifest's stored bytes."""
    shas = {rel: meta.sha256 for rel, meta in files.items()}
    shas["manifest.json"] = hashlib.sha256(manifest).hexdigest()
    return attestations.version_digest(shas)
