"""`mlops registry fsck`: leftovers of crashes are listed and removed; complete versions never touched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from registry import Registry, open_registry
from registry.fsck import repair, scan
from registry.manifest import TestRun


class Crash(Exception):
    """Stands in for the process dying at a step."""


def _crash_at(step: str):
    def hook(name: str) -> None:
        if name == step:
            raise Crash(step)

    return hook


def _crash(reg: Registry, step: str, action) -> None:
    reg.fault_hook = _crash_at(step)
    with pytest.raises(Crash):
        action()
    reg.fault_hook = None


@pytest.fixture
def wrecked(registry_uri, tmp_path, model_dir, manifest, promote, signing_keys) -> Registry:
    """Two complete versions (1 in production) and one leftover of every kind a crash can leave."""
    reg = Registry.open(registry_uri, "xray", cache_dir=tmp_path / "cache")
    reg.register(model_dir(), manifest, actor="a")
    promote(reg, "testing:1")
    reg.register(model_dir(), manifest, actor="a")
    reg.annotate("testing:2", TestRun(passed=True), actor="ci")
    _crash(reg, "register:files", lambda: reg.register(model_dir(), manifest, actor="a"))  # testing:3
    _crash(reg, "promote:manifest", lambda: reg.promote("testing:2", expected_production=1))
    reg.store.write("probes/xray/0123.json", b"{}")  # a pre-flight that could not delete its probe
    if registry_uri.startswith("file://"):
        # A process killed between writing a temp file and renaming it into place leaves this.
        root = Path(registry_uri.removeprefix("file://"))
        (root / "testing" / "xray" / "2" / ".tmp-0badc0ffee").write_bytes(b"half a file")
    return reg


def _kinds(findings) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in findings:
        out.setdefault(f.kind, []).append(f.what)
    return out


def test_scan_lists_every_kind_of_leftover(wrecked, registry_uri):
    kinds = _kinds(scan(wrecked))
    assert kinds["half-registered"] == ["testing:3"]
    assert kinds["unpromoted-copy"] == ["production:2"]
    assert kinds["probe"] == ["probes/xray/0123.json"]
    if registry_uri.startswith("file://"):
        assert kinds["temp-file"] == ["testing/xray/2/.tmp-0badc0ffee"]
    assert "unlogged" not in kinds


def test_repair_removes_leftovers_and_keeps_complete_versions(wrecked, registry_uri):
    def models() -> dict[int, bytes]:
        return {v.version: wrecked.fetch(v.ref, refresh=True).model_path.read_bytes() for v in wrecked.list()}

    before = models()
    done = repair(wrecked, scan(wrecked), grace_s=0, actor="ops")
    assert len(done) == (4 if registry_uri.startswith("file://") else 3)
    assert scan(wrecked) == []
    # Complete versions are untouched: same list, same verified bytes, production unchanged.
    assert {
        v.version: wrecked.fetch(v.ref, refresh=True).model_path.read_bytes() for v in wrecked.list()
    } == before
    assert wrecked.fetch("production:current").version == 1
    assert wrecked.store.list("testing/xray/3/") == [] and wrecked.store.list("production/xray/2/") == []
    event = wrecked.audit()[-1]
    assert (event["action"], event["actor"]) == ("fsck", "ops")
    assert event["repaired"]["half-registered"] == 1 and "testing/xray/3/model.keras" in event["objects"]
    assert wrecked.verify_audit().ok
    # The version whose copy was removed can still be promoted: its testing copy is whole.
    wrecked.promote("testing:2", expected_production=1)
    assert wrecked.fetch("production:current").version == 2


def test_young_leftovers_may_be_writes_in_progress_and_stay(wrecked):
    assert repair(wrecked, scan(wrecked), grace_s=3600, actor="ops") == []
    assert len(scan(wrecked)) >= 3


def test_a_promotion_that_died_before_its_audit_event_is_appended_as_recovered(
    registry_uri, tmp_path, model_dir, manifest, promote
):
    reg = Registry.open(registry_uri, "xray", cache_dir=tmp_path / "cache")
    reg.register(model_dir(), manifest, actor="a")
    reg.annotate("testing:1", TestRun(passed=True), actor="ci")
    _crash(reg, "promote:pointer", lambda: reg.promote("testing:1", expected_production=None, actor="po"))
    [finding] = scan(reg)
    assert (finding.kind, finding.what) == ("unlogged", "promote production:1")
    repair(reg, [finding], grace_s=0, actor="ops")
    appended = [e for e in reg.log.events() if e["action"] == "promote"]
    assert len(appended) == 1 and appended[0]["recovered"] is True
    assert appended[0]["approval"]["approved_by"] == "product-owner"  # who approved is not lost
    assert scan(reg) == [] and reg.verify_audit().ok


def test_cli_fsck_lists_then_repairs(cli, settings, model_dir, manifest, monkeypatch):
    reg = open_registry(settings)
    reg.register(model_dir(), manifest, actor="a")
    reg.fault_hook = _crash_at("register:files")
    with pytest.raises(Crash):
        reg.register(model_dir(), manifest, actor="a")
    listing = cli("registry", "fsck")
    assert listing.code == 1
    assert "half-registered  testing:2" in listing.out and "younger than the grace period" in listing.out
    fixed = cli("registry", "fsck", "--repair", "--grace-s", "0", "--json")
    assert fixed.code == 0, fixed.err
    data = json.loads(fixed.out)
    assert [f["what"] for f in data["repaired"]] == ["testing:2"] and data["left"] == []
    clean = cli("registry", "fsck")
    assert clean.code == 0 and "no leftovers" in clean.out
    assert [v.version for v in reg.list()] == [1]
