"""Trust by keys (issue 23): every bypass of the old caller-side policy, now refused where the model serves.

Each test plays an attacker with write access to the registry but no approver key, on a local
registry and on fake-gcs-server, and checks that promote and/or deploy refuse, the refusal is in the
audit log, and production:current still resolves to the last verified version.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from trust_keys import SUITE, TrustSet, make_trust

from core.errors import MlopsError
from core.identity import os_account
from core.settings import load_settings
from registry import Registry, open_registry
from registry.chain import attest, verify_chain
from registry.errors import IntegrityError
from registry.manifest import TestRun
from registry.policy import Policy
from registry.signing import SIGNATURE_FILE


@pytest.fixture
def trust(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry_uri: str) -> TrustSet:
    monkeypatch.setenv("MLOPS_REGISTRY", registry_uri)
    monkeypatch.setenv("MLOPS_REGISTRY_MODEL_NAME", "xray")
    return make_trust(tmp_path / "trust", monkeypatch)


def _reg() -> Registry:
    return open_registry(load_settings())


def _tested(
    reg: Registry, ref: str, key: Path, passed: bool = True, suite: str = SUITE, with_api: bool = True
):
    """What `mlops test-model --with-api` signs with the tester key after a run."""
    local = reg.fetch(ref, refresh=True)
    summary = {"passed": 12 if passed else 9, "failed": 0 if passed else 3, "errors": 0}
    facts = {"passed": passed, "summary": summary, "suite_digest": suite, "with_api": with_api, "at": "2025"}
    attest(reg, local.version, local.digest, "tests", facts, key)


def _good_version(reg: Registry, trust: TrustSet, model_dir, manifest) -> int:
    """Register, test (signed) and promote a version the honest way; its number."""
    mv = reg.register(model_dir(), manifest, actor="ci")
    _tested(reg, mv.ref, trust.key("ci-tester"))
    reg.promote(
        mv.ref,
        expected_production=reg.pointer()["current"],
        approved_by="product-owner",
        approver_key=trust.key("product-owner"),
    )
    return mv.version


def _deploy_check(ref: str = "production:current") -> None:
    """What `mlops deploy` (local and k8s) runs before anything is rolled out."""
    from deploy.model import resolve_model

    resolve_model(load_settings(), ref, verify=True)


def _refusals(reg: Registry) -> list[dict]:
    return [e for e in reg.audit() if e["action"] == "refuse"]


def test_the_version_digest_is_the_subject_model_sig_signs(trust, model_dir, manifest):
    reg = _reg()
    mv = reg.register(model_dir(), manifest, actor="ci")
    bundle = json.loads(reg.store.read(f"testing/xray/{mv.version}/{SIGNATURE_FILE}"))
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    assert reg.fetch(mv.ref).digest == statement["subject"][0]["digest"]["sha256"]


def test_an_honest_chain_verifies_and_names_who_signed_what(trust, model_dir, manifest):
    reg = _reg()
    version = _good_version(reg, trust, model_dir, manifest)
    verdict = verify_chain(reg, "production:current", reg.policy.trust)
    assert verdict.ok, verdict.problems
    signers = {s.kind: s.signer for s in verdict.steps}
    assert signers == {
        "signature": "ci-trainer",
        "gate": "ci-trainer",
        "provenance": "ci-trainer",
        "tests": "ci-tester",
        "approval": "product-owner",
    }
    assert reg.pointer()["current"] == version
    _deploy_check()  # does not raise


def test_jenkins_input_variables_set_by_hand_approve_nothing(trust, model_dir, manifest, monkeypatch):
    reg = _reg()
    mv = reg.register(model_dir(), manifest, actor="mallory")
    _tested(reg, mv.ref, trust.key("ci-tester"))
    monkeypatch.setenv("MLOPS_INPUT_SUBMITTER", "product-owner")
    monkeypatch.setenv("JENKINS_URL", "http://jenkins.test/")
    monkeypatch.setenv("BUILD_URL", "http://jenkins.test/job/x/1/")
    with pytest.raises(MlopsError, match="approver key"):
        reg.promote(mv.ref, expected_production=None, approved_by="product-owner")
    # Mallory's own key, claiming to be the product owner: the key is not in the policy.
    mallory = trust.add("mallory", "approver")
    with pytest.raises(MlopsError, match="not an approver key of the trust policy"):
        reg.promote(mv.ref, expected_production=None, approved_by="product-owner", approver_key=mallory)
    assert reg.pointer()["current"] is None
    assert len(_refusals(reg)) == 2


def test_approvers_from_settings_env_or_a_policy_object_do_not_count(trust, model_dir, manifest, monkeypatch):
    reg = _reg()
    good = _good_version(reg, trust, model_dir, manifest)
    monkeypatch.setenv("MLOPS_DEPLOY_APPROVERS", "mallory")
    monkeypatch.setenv("MLOPS_DEPLOY_APPROVER_ACCOUNTS", "mallory=product-owner")
    bad = _reg().register(model_dir(), manifest, actor="mallory")
    _tested(reg, bad.ref, trust.key("ci-tester"))
    with pytest.raises(MlopsError, match="approver key"):
        _reg().promote(bad.ref, expected_production=good, approved_by="mallory")
    # The Python API with a hand-made policy (no trust policy) mapping the attacker's own OS account
    # to an approver: the old checks let it through ...
    own = Policy(approvers=("mallory",), approver_accounts=(f"{os_account()}=mallory",))
    attacker = Registry(reg.store, "xray", reg.cache_dir, own)
    attacker.annotate(bad.ref, TestRun(passed=True, suite="mine"), actor="mallory")  # plain JSON
    attacker.promote(bad.ref, expected_production=good, approved_by="mallory")
    assert reg.pointer()["current"] == bad.version
    # ... but nothing serves it: deploy refuses, says why and records it.
    with pytest.raises(MlopsError, match="no approval signed by an approver key"):
        _deploy_check()
    assert any(e["attempted"] == "deploy" for e in _refusals(reg))
    _deploy_check(f"production:{good}")  # the previous verified version still deploys


def test_a_swapped_model_with_rewritten_checksums_and_no_signature_is_refused(trust, model_dir, manifest):
    import hashlib

    reg = _reg()
    good = _good_version(reg, trust, model_dir, manifest)
    mv = reg.register(model_dir(), manifest, actor="ci")
    _tested(reg, mv.ref, trust.key("ci-tester"))
    key = f"testing/xray/{mv.version}/"
    stored = json.loads(reg.store.read(key + "manifest.json"))
    evil = b"a much worse model"
    stored["files"]["model.keras"] = {"sha256": hashlib.sha256(evil).hexdigest(), "size": len(evil)}
    reg.store.write(key + "model.keras", evil)
    reg.store.write(key + "manifest.json", (json.dumps(stored, indent=2, sort_keys=True) + "\n").encode())
    reg.store.delete(key + SIGNATURE_FILE)
    with pytest.raises(MlopsError, match="not signed and signing is required"):
        reg.promote(
            mv.ref,
            expected_production=good,
            approved_by="product-owner",
            approver_key=trust.key("product-owner"),
        )
    with pytest.raises(MlopsError, match="not signed and signing is required"):
        _deploy_check(mv.ref)
    assert reg.pointer()["current"] == good


def test_a_re_test_with_a_one_test_suite_or_without_the_api_does_not_count(trust, model_dir, manifest):
    reg = _reg()
    good = _good_version(reg, trust, model_dir, manifest)
    mv = reg.register(model_dir(), manifest, actor="ci")
    tester = trust.key("ci-tester")
    _tested(reg, mv.ref, tester, passed=False)  # the required suite failed
    _tested(reg, mv.ref, tester, suite="sha256:" + "0" * 64)  # `assert True` in a suite of its own
    with pytest.raises(MlopsError, match="the latest required suite run failed"):
        reg.promote(
            mv.ref,
            expected_production=good,
            approved_by="product-owner",
            approver_key=trust.key("product-owner"),
        )
    other = reg.register(model_dir(), manifest, actor="ci")
    _tested(reg, other.ref, tester, with_api=False)  # passed, but the API smoke tests never ran
    with pytest.raises(MlopsError, match=r"did not run \(--with-api\)"):
        reg.promote(
            other.ref,
            expected_production=good,
            approved_by="product-owner",
            approver_key=trust.key("product-owner"),
        )
    assert reg.pointer()["current"] == good
    assert {e["version"] for e in _refusals(reg)} == {mv.version, other.version}


def test_a_direct_pointer_write_is_refused_at_deploy(trust, model_dir, manifest):
    reg = _reg()
    good = _good_version(reg, trust, model_dir, manifest)
    mv = reg.register(model_dir(), manifest, actor="ci")
    _tested(reg, mv.ref, trust.key("ci-tester"), passed=False)
    for rel in [*reg.fetch(mv.ref).manifest.files, "manifest.json", SIGNATURE_FILE]:
        reg.store.copy(f"testing/xray/{mv.version}/{rel}", f"production/xray/{mv.version}/{rel}")
    pointer = reg.pointer()
    entry = {
        "action": "promote",
        "version": mv.version,
        "at": "2030-01-01T00:00:00Z",
        "actor": "mallory",
        "id": "x",
    }
    pointer.update(
        current=mv.version, previous=good, stack=[good, mv.version], history=[*pointer["history"], entry]
    )
    reg.store.write("production/xray/pointer.json", json.dumps(pointer).encode())
    with pytest.raises(MlopsError, match="not trusted") as info:
        _deploy_check()
    assert "required suite run failed" in str(info.value) and "no approval signed" in str(info.value)


def test_forged_or_foreign_statements_are_ignored(trust, model_dir, manifest):
    reg = _reg()
    mv = reg.register(model_dir(), manifest, actor="ci")
    _tested(reg, mv.ref, trust.key("ci-tester"))
    digest = reg.fetch(mv.ref).digest
    # An approval signed with a key outside the policy, and one whose payload was edited after signing.
    outsider = trust.add("outsider", "approver")
    attest(
        reg,
        mv.version,
        digest,
        "approval",
        {"approver": "product-owner", "expected_production": None},
        outsider,
    )
    key = attest(reg, mv.version, digest, "approval", {"reason": "x"}, trust.key("product-owner"))
    envelope = json.loads(reg.store.read(key))
    body = json.loads(base64.b64decode(envelope["payload"]))
    body["predicate"]["version"] = mv.version + 1
    envelope["payload"] = base64.b64encode(json.dumps(body).encode()).decode()
    reg.store.delete(key)
    reg.store.write(key, json.dumps(envelope).encode())
    verdict = verify_chain(reg, mv.ref, reg.policy.trust, full=True)
    assert not verdict.ok
    assert verdict.problems == ["approval: no approval signed by an approver key (approvers: product-owner)"]
    ignored = [s.detail for s in verdict.steps if s.kind == "ignored"]
    assert any("not by a key the trust policy names" in d for d in ignored)
    assert any("does not verify" in d for d in ignored)


def test_removing_an_approver_key_revokes_its_approvals_until_re_approved(trust, model_dir, manifest):
    reg = _reg()
    _good_version(reg, trust, model_dir, manifest)
    trust.add("qa-lead", "approver")
    trust.write(["ci-trainer", "ci-tester", "qa-lead"])  # product-owner's key removed from the policy
    with pytest.raises(MlopsError, match="no approval signed by an approver key"):
        _deploy_check()
    with pytest.raises(MlopsError, match="not an approver key"):
        _reg().approve("production:current", trust.key("product-owner"), None, "again", "po")
    _reg().approve("production:current", trust.key("qa-lead"), "qa-lead", "re-approved after rotation", "qa")
    _deploy_check()
    steps = {s.kind: s for s in verify_chain(_reg(), "production:current", _reg().policy.trust).steps}
    assert steps["approval"].signer == "qa-lead"
    assert steps["approval"].detail.startswith("approved over an empty production")


def test_a_cached_file_swapped_for_one_of_the_same_size_and_mtime_is_not_served(trust, model_dir, manifest):
    reg = _reg()
    mv = reg.register(model_dir(b"the real model"), manifest, actor="ci")
    cached = reg.fetch(mv.ref).model_path
    st = cached.stat()
    cached.write_bytes(b"the evil model")  # same length
    os.utime(cached, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(IntegrityError, match="swapped after verification"):
        reg.fetch(mv.ref)  # what a worker does at (re)start: refused, never served
    assert reg.fetch(mv.ref, refresh=True).model_path.read_bytes() == b"the real model"  # serve/deploy
