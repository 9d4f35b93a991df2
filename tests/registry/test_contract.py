"""The registry contract, run against every store kind (see conftest: registry_uri)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from core.identity import os_account
from registry import (
    ConflictError,
    IntegrityError,
    LocalModel,
    NotFoundError,
    RefError,
    Registry,
    RegistryError,
)
from registry.manifest import Deployment, TestRun


def test_register_fills_manifest_and_lists(reg: Registry, model_dir, manifest):
    src = model_dir()
    v1 = reg.register(src, manifest, actor="alice", reason="first")
    v2 = reg.register(model_dir(), manifest, actor="alice")
    assert (v1.version, v2.version) == (1, 2)
    assert [v.version for v in reg.list()] == [1, 2]
    m = v1.manifest
    assert (m.name, m.version, m.area, m.model_file) == ("xray", 1, "testing", "model.keras")
    assert m.schema_version == 2
    assert m.classes == ("normal", "covid")
    assert set(m.files) == {"model.keras", "report.html", "plots/confusion.png"}
    data = (src / "model.keras").read_bytes()
    assert (m.files["model.keras"].sha256, m.files["model.keras"].size) == (
        hashlib.sha256(data).hexdigest(),
        len(data),
    )
    assert (m.annotations.tests, m.annotations.approvals, m.annotations.deployments) == ((), (), ())
    assert m.created_at is not None and m.created_at.endswith("Z")


def test_refs_resolve(promote, reg: Registry, model_dir, manifest):
    for _ in range(3):
        reg.register(model_dir(), manifest, actor="a")
    assert reg.resolve("testing:latest").version == 3
    assert reg.resolve("testing:2").version == 2
    promote(reg, "testing:1", actor="po")
    promote(reg, "testing:3", actor="po")
    assert reg.resolve("production:current").version == 3
    assert reg.resolve("production:previous").version == 1
    assert reg.resolve("production:1").area == "production"
    assert [v.version for v in reg.list("production")] == [1, 3]


@pytest.mark.parametrize(
    ("ref", "error", "words"),
    [
        ("testing:9", NotFoundError, "testing:9"),
        ("production:current", NotFoundError, "no current"),
        ("production:previous", NotFoundError, "no previous"),
        ("production:1", NotFoundError, "never promoted"),
        ("testing:current", RefError, "malformed"),
        ("testing:0", RefError, "malformed"),
        ("staging:1", RefError, "unknown area"),
        ("no/such/model.keras", RefError, "unknown ref"),
        ("", RefError, "empty"),
    ],
)
def test_bad_refs_are_clear_errors(reg: Registry, model_dir, manifest, ref, error, words):
    reg.register(model_dir(), manifest, actor="a")
    with pytest.raises(error, match=words):
        reg.resolve(ref)


def test_fetch_verifies_and_caches(promote, reg: Registry, model_dir, manifest, tmp_path: Path):
    src = model_dir()
    reg.register(src, manifest, actor="a")
    got = reg.fetch("testing:1")
    assert isinstance(got, LocalModel)
    assert got.version == 1
    assert got.model_path.read_bytes() == (src / "model.keras").read_bytes()
    assert (got.dir / "plots" / "confusion.png").is_file()
    again = reg.fetch("testing:latest")
    assert again.dir == got.dir
    dest = reg.fetch("testing:1", dest=tmp_path / "out")
    assert dest.model_path == tmp_path / "out" / "model.keras"
    promote(reg, "testing:1", actor="po")
    prod = reg.fetch("production:current", dest=tmp_path / "prod")
    written = json.loads((tmp_path / "prod" / "manifest.json").read_text())
    assert (written["area"], written["version"], prod.manifest.area) == ("production", 1, "production")


def test_fetch_refetches_a_tampered_cache_copy(reg: Registry, model_dir, manifest):
    src = model_dir()
    reg.register(src, manifest, actor="a")
    got = reg.fetch("testing:1")
    got.model_path.write_bytes(b"evil")
    again = reg.fetch("testing:1")
    assert again.model_path.read_bytes() == (src / "model.keras").read_bytes()


def test_annotations_are_shared_by_testing_and_production(promote, reg: Registry, model_dir, manifest):
    reg.register(model_dir(), manifest, actor="a")
    reg.annotate("testing:1", TestRun(passed=True, suite="unit"), actor="ci")
    promote(reg, "testing:1", actor="po")
    reg.annotate("production:current", Deployment(target="local", result="ok"), actor="cd")
    notes = reg.resolve("testing:1").manifest.annotations
    assert notes.tests[0].passed is True
    assert notes.tests[0].actor == "ci"
    assert notes.deployments[0].target == "local"
    assert reg.resolve("production:1").manifest.annotations == notes
    with pytest.raises(RegistryError, match="TestRun"):
        reg.annotate("testing:1", {"passed": True}, actor="x")  # type: ignore[arg-type]  # a plain dict


def test_promote_and_rollback(promote, reg: Registry, model_dir, manifest):
    for _ in range(3):
        reg.register(model_dir(), manifest, actor="a")
    promote(reg, "testing:1", actor="po", reason="first")
    promote(reg, "testing:2", actor="po")
    got = promote(reg, "testing:latest", actor="po")
    assert got.ref == "production:3"
    assert reg.rollback(actor="ops", reason="bad").version == 2
    assert reg.resolve("production:current").version == 2
    assert reg.resolve("production:previous").version == 1
    assert reg.rollback(actor="ops").version == 1
    with pytest.raises(RegistryError, match="no previous version"):
        reg.rollback(actor="ops")
    # testing versions are untouched: promotion copies, never moves
    assert [v.version for v in reg.list("testing")] == [1, 2, 3]
    assert (
        reg.fetch("production:current").model_path.read_bytes()
        == reg.fetch("testing:1").model_path.read_bytes()
    )


def test_promote_refuses_non_testing_refs_and_repeats(promote, reg: Registry, model_dir, manifest):
    reg.register(model_dir(), manifest, actor="a")
    promote(reg, "testing:1", actor="po")
    with pytest.raises(RefError, match="testing ref"):
        promote(reg, "production:current", actor="po")
    with pytest.raises(RegistryError, match="already production:current"):
        promote(reg, "testing:1", actor="po")


def test_audit_log_records_who_what_why(promote, reg: Registry, model_dir, manifest):
    reg.register(model_dir(), manifest, actor="alice", reason="nightly")
    reg.annotate("testing:1", TestRun(passed=True), actor="ci")
    promote(reg, "testing:1", actor="po", reason="looks good")
    reg.register(model_dir(), manifest, actor="alice")
    promote(reg, "testing:2", actor="po")
    reg.rollback(actor="ops", reason="smoke test failed")
    events = reg.audit()
    assert [e["action"] for e in events] == [
        "register", "annotate:tests", "promote", "register", "annotate:tests", "promote", "rollback",
    ]  # fmt: skip
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6, 7]  # one hash chain, in order
    promoted = events[2]
    assert (promoted["actor"], promoted["reason"], promoted["version"]) == ("po", "looks good", 1)
    approval = promoted["approval"]
    assert approval["approved_by"] == "product-owner"
    assert approval["identity"] == {"name": os_account(), "source": "os-user"}  # never an env variable
    assert approval["expected_production"] is None and approval["evidence"]["metrics"]["accuracy"] == 0.9
    assert events[-1]["reason"] == "smoke test failed"
    assert all(e["at"].endswith("Z") for e in events)
    assert reg.verify_audit().ok


def test_tampered_registry_file_is_refused(reg: Registry, model_dir, manifest, registry_uri):
    reg.register(model_dir(), manifest, actor="a")
    _tamper(reg, "testing/xray/1/model.keras", b"not the model")
    with pytest.raises(IntegrityError, match=r"model\.keras"):
        reg.fetch("testing:1")


def test_conflict_error_is_a_registry_error():
    assert issubclass(ConflictError, RegistryError)


def _tamper(reg: Registry, key: str, data: bytes) -> None:
    """Overwrite an object behind the registry's back (as an attacker or a bad disk would)."""
    reg.store.write(key, data)


def test_listing_summaries_match_manifests(promote, reg: Registry, model_dir, manifest, registry_uri):
    reg.register(model_dir(), {**manifest, "gate": {"passed": True}}, actor="ci")
    promote(reg, "testing:1", actor="po")
    created = reg.resolve("testing:1").manifest.created_at
    expected = {"created_at": created, "registered_by": "ci", "accuracy": 0.9, "gate_passed": True}
    for area in ("testing", "production"):
        versions = reg.list(area)
        assert reg.summaries(versions) == [expected]
        if registry_uri.startswith("gs://"):
            # GCS lists the summary as object metadata (kept by the server-side copy): no reads.
            assert versions[0]._summary == expected


def test_concurrent_fetches_share_one_verified_copy(reg: Registry, model_dir, manifest):
    from concurrent.futures import ThreadPoolExecutor

    src = model_dir(os.urandom(1 << 20))
    reg.register(src, manifest, actor="a")
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: reg.fetch("testing:1"), range(4)))
    assert len({g.dir for g in got}) == 1
    assert got[0].model_path.read_bytes() == (src / "model.keras").read_bytes()
    assert not [p for p in got[0].dir.parent.iterdir() if p.name.startswith(".tmp-")]


def test_concurrent_registrations_get_distinct_numbers(registry_uri, tmp_path, model_dir, manifest):
    from concurrent.futures import ThreadPoolExecutor

    sources = [model_dir() for _ in range(4)]
    Registry.open(registry_uri, "xray").register(sources[0], manifest, actor="a")  # creates the root

    def register(src: Path) -> int:
        return (
            Registry.open(registry_uri, "xray", cache_dir=tmp_path / "c")
            .register(src, manifest, actor="a")
            .version
        )

    with ThreadPoolExecutor(4) as pool:
        numbers = list(pool.map(register, sources))
    assert sorted(numbers) == [2, 3, 4, 5]
    reg = Registry.open(registry_uri, "xray", cache_dir=tmp_path / "c")
    assert [v.version for v in reg.list()] == [1, 2, 3, 4, 5]
    for n, src in zip(numbers, sources, strict=True):  # each number holds its own files
        assert reg.fetch(f"testing:{n}").model_path.read_bytes() == (src / "model.keras").read_bytes()


def test_listing_reads_each_manifest_at_most_once(reg: Registry, model_dir, manifest, monkeypatch):
    for _ in range(3):
        reg.register(model_dir(), manifest, actor="ci")
    reads: list[str] = []
    real = reg.store.read_many
    monkeypatch.setattr(reg.store, "read_many", lambda keys: (reads.extend(keys), real(keys))[1])
    # Listed metadata (GCS) or the local summary cache (first list fills it) answers a listing.
    first = reg.summaries(reg.list())
    assert len(reads) in (0, 3)
    reg.register(model_dir(), manifest, actor="ci")
    reads.clear()
    second = reg.summaries(reg.list())
    assert second[:3] == first and second[3]["registered_by"] == "ci"
    assert len(reads) <= 1  # only the new version, at most


def test_read_file_returns_one_verified_file(reg: Registry, model_dir, manifest, promote):
    src = model_dir()
    reg.register(src, manifest, actor="a")
    promote(reg, "testing:1")
    assert reg.read_file("testing:1", "report.html") == (src / "report.html").read_bytes()
    assert (
        reg.read_file("production:current", "plots/confusion.png")
        == (src / "plots/confusion.png").read_bytes()
    )
    with pytest.raises(NotFoundError, match=r"has no file golden/golden\.json"):
        reg.read_file("testing:1", "golden/golden.json")
    _tamper(reg, "testing/xray/1/report.html", b"<html>changed</html>")
    with pytest.raises(IntegrityError, match=r"report\.html"):
        reg.read_file("testing:1", "report.html")
