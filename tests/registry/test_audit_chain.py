"""The audit log's hash chain on both stores: deleted, edited, reordered events are named; refusals count."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest

from core.identity import os_account
from registry import Registry
from registry.audit import GENESIS, body_hash
from registry.errors import AuditChainError
from registry.manifest import TestRun, TestSummary


def _event_key(seq: int, model: str = "xray") -> str:
    return f"audit/{model}/{seq:012d}.json"


@pytest.fixture
def history(reg: Registry, model_dir, manifest, promote) -> Registry:
    """Six events: register, tests, promote, register, tests, refused promote (an untested claim)."""
    reg.register(model_dir(), manifest, actor="alice")
    promote(reg, "testing:1")
    reg.register(model_dir(), manifest, actor="alice")
    reg.annotate("testing:2", TestRun(passed=False, summary=TestSummary(failed=1)), actor="ci")
    with pytest.raises(Exception, match="latest model tests failed"):
        reg.promote("testing:2", expected_production=1, actor="po")
    assert [e["action"] for e in reg.log.events()] == [
        "register", "annotate:tests", "promote", "register", "annotate:tests", "refuse",
    ]  # fmt: skip
    return reg


def test_an_untouched_chain_verifies(history):
    report = history.verify_audit()
    assert (report.ok, report.events, report.head_seq) == (True, 6, 6)


def test_a_deleted_event_is_named(history):
    history.store.delete(_event_key(3))
    assert history.verify_audit().problem == "event 3 is missing: deleted from the audit log"


def test_an_edited_event_is_named(history):
    event = json.loads(history.store.read(_event_key(3)))
    event["approval"]["approved_by"] = "mallory"
    history.store.write(_event_key(3), json.dumps(event).encode())
    assert history.verify_audit().problem == (
        "event 3 was edited: its content no longer matches its own hash"
    )
    event["hash"] = body_hash(event)  # a careful forger recomputes the event's own hash...
    history.store.write(_event_key(3), json.dumps(event).encode())
    problem = history.verify_audit().problem
    assert problem.startswith("event 3 was edited or replaced: event 4 recorded sha256")  # ...event 4 knew


def test_reordered_events_are_named(history):
    second, third = history.store.read(_event_key(2)), history.store.read(_event_key(3))
    history.store.write(_event_key(2), third)
    history.store.write(_event_key(3), second)
    assert history.verify_audit().problem == "event 2 holds event 3: events were reordered"


def test_dropping_the_tail_is_caught_by_the_pointer_anchor(history, model_dir, manifest, promote):
    history.register(model_dir(), manifest, actor="alice")  # event 7
    promote(history, "testing:3")  # tests event 8; the pointer anchors event 8; promote event 9
    for seq in (9, 8, 7):  # no gap is left: only the anchor can tell
        history.store.delete(_event_key(seq))
    problem = history.verify_audit().problem
    assert problem.startswith("event 8 is missing: deleted from the audit log (the production pointer")


def test_an_object_written_around_the_chain_is_named(history):
    history.store.write("audit/xray/20250101T000000.000000Z-forged.json", b"{}")
    assert "is not an event of the chain" in history.verify_audit().problem


def test_promotion_verifies_the_chain_first_and_records_the_refusal(history, model_dir, manifest):
    history.store.delete(_event_key(2))
    history.register(model_dir(), manifest, actor="alice")
    history.annotate("testing:3", TestRun(passed=True), actor="ci")
    with pytest.raises(AuditChainError, match="event 2 is missing"):
        history.promote("testing:3", expected_production=1, actor="po")
    assert history.pointer()["current"] == 1
    last = history.log.events()[-1]
    assert (last["action"], last["attempted"], last["version"]) == ("refuse", "promote", 3)


def test_concurrent_writers_keep_one_chain(registry_uri, tmp_path):
    def append(worker: int) -> None:
        reg = Registry.open(registry_uri, "xray", cache_dir=tmp_path / f"c{worker}")
        for n in range(8):
            reg.log.append({"action": "note", "actor": f"w{worker}", "n": n, "at": ""})

    Registry.open(registry_uri, "xray", cache_dir=tmp_path / "c").log.append({"action": "first", "at": ""})
    threads = [threading.Thread(target=append, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    reg = Registry.open(registry_uri, "xray", cache_dir=tmp_path / "c")
    report = reg.log.verify()
    assert (report.ok, report.events) == (True, 33), report.problem
    assert [e["seq"] for e in reg.log.events()] == list(range(1, 34))


def test_cli_verify_exit_codes(cli, settings, model_dir, manifest):
    from registry import open_registry

    reg = open_registry(settings)
    reg.register(model_dir(), manifest, actor="alice")
    reg.annotate("testing:1", TestRun(passed=True), actor="ci")
    ok = cli("registry", "audit", "--verify")
    assert ok.code == 0 and "intact, 2 events" in ok.out
    reg.store.delete(_event_key(1, reg.name))
    broken = cli("registry", "audit", "--verify", "--json")
    assert broken.code == 3  # a check said no (docs/architecture.md, exit codes)
    assert json.loads(broken.out)["problem"] == "event 1 is missing: deleted from the audit log"
    listing = cli("registry", "audit")
    assert listing.code == 0 and "annotate:tests" in listing.out


# -- signed checkpoints (issue 23.4): the attacks a hash chain alone lets through ---------------------


@pytest.fixture
def signed(signing_keys, registry_uri, tmp_path, model_dir, manifest, promote) -> Registry:
    """Seven events with a signing key: promote (3) and refuse (6) are checkpointed, register 7 is not."""
    reg = Registry.open(registry_uri, "xray", cache_dir=tmp_path / "signed-cache")
    reg.register(model_dir(), manifest, actor="alice")
    promote(reg, "testing:1")
    reg.register(model_dir(), manifest, actor="alice")
    reg.annotate("testing:2", TestRun(passed=False, summary=TestSummary(failed=1)), actor="ci")
    with pytest.raises(Exception, match="latest model tests failed"):
        reg.promote("testing:2", expected_production=1, actor="po")
    reg.register(model_dir(), manifest, actor="alice")
    assert [e["action"] for e in reg.log.events()] == [
        "register", "annotate:tests", "promote", "register", "annotate:tests", "refuse", "register",
    ]  # fmt: skip
    return reg


def _append_raw(reg: Registry, event: dict, signed_by: Path | None = None) -> int:
    """Append an event as a forger with write access does: valid prev and hash, straight to the store."""
    seq = max(e["seq"] for e in reg.log.events()) + 1
    body = {**event, "seq": seq, "prev": hashlib.sha256(reg.store.read(_event_key(seq - 1))).hexdigest()}
    body["hash"] = body_hash(body)
    if signed_by is not None:
        from registry import checkpoints

        cp = checkpoints.sign("xray", seq, body["hash"], "2030-01-01T00:00:00Z", signed_by)
        body["checkpoint"] = {"at": cp.at, "key_id": cp.key_id, "signature": cp.signature}
        reg.store.write(f"audit/xray/checkpoints/{seq:012d}.json", checkpoints.dumps(cp))
    reg.store.write(_event_key(seq), json.dumps(body).encode())
    return seq


def _rechain(reg: Registry, seq_to_edit: int, edit, strip_checkpoints: bool) -> None:
    """Edit one event, re-hash every event after it and rewrite the pointer's anchors to match."""
    prev, hashes = GENESIS, {}
    n = max(e["seq"] for e in reg.log.events())
    for seq in range(1, n + 1):
        body = json.loads(reg.store.read(_event_key(seq)))
        if seq == seq_to_edit:
            edit(body)
        if strip_checkpoints:
            body.pop("checkpoint", None)
            reg.store.delete(f"audit/xray/checkpoints/{seq:012d}.json")
        body["prev"] = prev
        body["hash"] = body_hash(body)
        data = json.dumps(body).encode()
        reg.store.write(_event_key(seq), data)
        prev = hashes[seq] = hashlib.sha256(data).hexdigest()
    pointer = reg.pointer()
    for entry in pointer["history"]:
        anchor = entry.get("audit_anchor") or {}
        if anchor.get("seq"):
            anchor["sha256"] = hashes[anchor["seq"]]
    reg.store.write("production/xray/pointer.json", json.dumps(pointer).encode())


def test_a_clean_signed_log_is_intact_with_its_unanchored_tail_counted(signed, cli):
    report = signed.verify_audit()
    assert report.ok, report.findings
    assert (report.events, report.checkpoints, report.anchored, report.unanchored) == (7, 2, 6, 1)
    assert sorted(signed.store.list("audit/xray/checkpoints/")) == [
        "audit/xray/checkpoints/000000000003.json",
        "audit/xray/checkpoints/000000000006.json",
    ]


def test_deleting_the_tail_back_past_a_checkpointed_promotion_is_reported(signed):
    for seq in (7, 6, 5, 4, 3):  # no gap is left, and the pointer's anchor (event 2) is still there
        signed.store.delete(_event_key(seq))
    report = signed.verify_audit()
    assert not report.ok
    truncated = [f for f in report.findings if f.endswith("deleted (truncated)")]
    assert len(truncated) == 2, report.findings  # the checkpoints at 3 and at 6 both say so
    assert truncated[0].startswith("the log ends at event 2 but a checkpoint signed at")
    assert truncated[1].endswith("covers 6: events 3 to 6 were deleted (truncated)")


def test_deleting_only_the_last_checkpointed_refusal_is_reported(signed):
    signed.store.delete(_event_key(7))
    signed.store.delete(_event_key(6))
    [finding] = signed.verify_audit().findings
    assert finding.endswith("covers 6: event 6 was deleted (truncated)")


@pytest.mark.parametrize("strip", [False, True], ids=["checkpoints-kept", "checkpoints-deleted"])
def test_an_edit_rehashed_through_the_chain_and_the_pointer_is_reported(signed, strip):
    def edit(body):
        body["actor"] = "mallory"

    _rechain(signed, 1, edit, strip_checkpoints=strip)
    assert signed.log.verify(signed._anchors(signed.pointer())).ok  # hash chain and anchors: fooled
    report = signed.verify_audit()
    assert not report.ok
    if strip:  # the signatures are gone with the checkpoints: the promotion nothing vouches for
        assert report.findings == [  # (refusal 6 may be unsigned: it changed nothing)
            "1 decisions (events 3) and no signed checkpoint at all: checkpoints deleted, decisions "
            "forged, or a log from before checkpoints (the next promotion, rollback or refusal by a key "
            "holder signs one)"
        ]
    else:
        assert "event 3 is not the event a checkpoint signed at" in " ".join(report.findings)
        assert any(f.startswith("event 6 (refuse by po): its checkpoint is its signature does not verify")
                   for f in report.findings), report.findings  # fmt: skip


def test_a_forged_tail_event_with_a_valid_hash_is_unanchored_or_forged(signed):
    _append_raw(signed, {"action": "annotate:tests", "actor": "ci", "model": "xray", "version": 2, "at": "x"})
    report = signed.verify_audit()
    assert report.ok and report.unanchored == 2  # not a decision: visible, not an error
    seq = _append_raw(
        signed, {"action": "promote", "actor": "mallory", "model": "xray", "version": 2, "at": "x"}
    )
    report = signed.verify_audit()
    assert report.findings == [
        f"event {seq} (promote by mallory at x) has no signed checkpoint: forged "
        "(every promotion and rollback is signed)"
    ]


def test_an_unsigned_refusal_is_unanchored_not_forged(signed):
    """An API worker holding no key records its refusal: visible as unanchored, never a broken log."""
    _append_raw(
        signed, {"action": "refuse", "actor": "api", "model": "xray", "attempted": "serve", "at": "x"}
    )
    report = signed.verify_audit()
    assert report.ok and report.unanchored == 2, report.findings


def test_a_checkpoint_signed_by_an_untrusted_key_is_reported(signed, tmp_path):
    from registry.signing import generate_key_pair

    mallory, mallory_pub = tmp_path / "mallory.pem", tmp_path / "mallory.pub"
    generate_key_pair(mallory, mallory_pub)
    seq = _append_raw(signed, {"action": "rollback", "actor": "mallory", "model": "xray", "at": "x"}, mallory)
    findings = signed.verify_audit().findings
    assert len(findings) == 2, findings
    assert findings[0].startswith(f"event {seq} (rollback by mallory): its checkpoint is signed by key ")
    assert findings[1].startswith(f"checkpoint at event {seq} (2030-01-01T00:00:00Z): signed by key ")
    assert all(f.endswith("which is not a trusted key") for f in findings)
    # Trust is the caller's: with only mallory's key trusted, the genuine checkpoints are the foreign ones.
    assert signed.verify_audit(trusted_keys=[mallory_pub]).anchored == seq


def test_a_log_from_before_checkpoints_is_signed_by_its_next_refusal(
    registry_uri, tmp_path, model_dir, manifest, promote, signing_keys
):
    from core.settings import load_settings
    from registry.policy import Policy

    me = f"{os_account()}=product-owner"  # the OS account approves (no trust policy)
    legacy = Registry.open(
        registry_uri,
        "xray",
        cache_dir=tmp_path / "c",
        policy=Policy(approvers=("product-owner",), approver_accounts=(me,)),
    )  # no keys
    legacy.register(model_dir(), manifest, actor="alice")
    promote(legacy, "testing:1")
    keyed = Registry.open(
        registry_uri, "xray", cache_dir=tmp_path / "c", policy=Policy.from_settings(load_settings())
    )
    assert (
        keyed.verify_audit().findings[0].startswith("1 decisions (events 3) and no signed checkpoint at all")
    )
    with pytest.raises(AuditChainError):
        promote(keyed, "testing:1")
    report = keyed.verify_audit()
    assert (report.ok, report.anchored, report.unanchored) == (True, 4, 0), report.findings


def test_promotion_refuses_a_forged_tail(signed, promote):
    _append_raw(signed, {"action": "rollback", "actor": "mallory", "model": "xray", "at": "x"})
    signed.annotate("testing:3", TestRun(passed=True), actor="ci")
    with pytest.raises(
        AuditChainError, match=r"event 8 \(rollback by mallory at x\) has no signed checkpoint: forged"
    ):
        promote(signed, "testing:3")
    assert signed.pointer()["current"] == 1


def test_cli_verify_prints_one_line_per_finding(signed, cli, registry_uri, monkeypatch):
    monkeypatch.setenv("MLOPS_REGISTRY", registry_uri)
    monkeypatch.setenv("MLOPS_MODEL_NAME", "xray")
    ok = cli("registry", "audit", "--verify")
    assert ok.code == 0
    assert "intact, 7 events" in ok.out
    assert "signed: 2 checkpoints, vouching for the chain to event 6" in ok.out
    assert "unanchored: 1 events after the last checkpoint" in ok.out
    for seq in (7, 6):
        signed.store.delete(_event_key(seq))
    _append_raw(signed, {"action": "promote", "actor": "mallory", "model": "xray", "at": "x"})
    broken = cli("registry", "audit", "--verify")
    assert broken.code == 3
    lines = [line for line in broken.out.splitlines() if line.startswith("  broken: ")]
    assert len(lines) == 2 and "BROKEN (2 findings)" in broken.out
    as_json = json.loads(cli("registry", "audit", "--verify", "--json").out)
    assert as_json["ok"] is False and len(as_json["findings"]) == 2
    assert as_json["checkpoints"] == {"checked": True, "signed": 1, "anchored_to": 3, "unanchored": 3}
