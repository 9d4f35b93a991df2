"""The audit log's hash chain on both stores: deleted, edited, reordered events are named; refusals count."""

from __future__ import annotations

import json
import threading

import pytest

from registry import Registry
from registry.audit import body_hash
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
    assert broken.code == 1
    assert json.loads(broken.out)["problem"] == "event 1 is missing: deleted from the audit log"
    listing = cli("registry", "audit")
    assert listing.code == 0 and "annotate:tests" in listing.out
