"""The typed manifest: parsing that names the bad field, registration that requires the lineage, and
manifests written by the code before schema 2 (tests/registry/fixtures/schema1: a registry made with
`mlops train`, `test-model`, `promote`, `retrain` of that code, manifests and annotations only)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from manifests import lineage

from registry import IntegrityError, Registry
from registry.manifest import (
    SCHEMA_VERSION,
    Deployment,
    Manifest,
    ManifestError,
    migrate,
)
from registry.policy import policy_failures

FIXTURE = Path(__file__).parent / "fixtures" / "schema1"
MODEL = "xray-classifier"


@pytest.fixture
def old_registry(tmp_path: Path) -> Registry:
    """A copy of the registry the schema-1 code wrote."""
    root = tmp_path / "old-registry"
    shutil.copytree(FIXTURE, root)
    return Registry.open(f"file://{root}", MODEL, cache_dir=tmp_path / "cache")


def _stored(area: str, version: int) -> dict[str, Any]:
    return json.loads((FIXTURE / area / MODEL / str(version) / "manifest.json").read_text())


def _contains(big: Any, small: Any, path: str = "manifest") -> None:
    """Every key and value of SMALL is in BIG (BIG may add keys: the typed fields' nulls)."""
    if isinstance(small, dict):
        assert isinstance(big, dict), path
        for key, value in small.items():
            assert key in big, f"{path}.{key} lost"
            _contains(big[key], value, f"{path}.{key}")
    else:
        assert big == small, path


# -- parsing names the field -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"metrics": {"accuracy": "x"}}, "manifest.metrics.accuracy: expected a number or null, got 'x'"),
        ({"metrics": {"accuracy": True}}, "manifest.metrics.accuracy: expected a number or null, got True"),
        ({"classes": "normal"}, "manifest.classes: expected a list, got 'normal'"),
        ({"classes": ["normal", 3]}, "manifest.classes[1]: expected a string, got 3"),
        ({"gate": {"reasons": []}}, "manifest.gate.passed: required, missing"),
        ({"gate": {"passed": "yes"}}, "manifest.gate.passed: expected true or false, got 'yes'"),
        ({"preprocessing": {"image_size": 64.5, "channels": 1}},
         "manifest.preprocessing.image_size: expected an integer, got 64.5"),
        ({"files": {"model.keras": {"sha256": "ab", "size": "9"}}},
         "manifest.files.model.keras.size: expected an integer, got '9'"),
        ({"dataset": {"source": {"kind": 7}}},
         "manifest.dataset.source.kind: expected a string or null, got 7"),
        ({"parent": "production:1"}, "manifest.parent: expected an object or null, got 'production:1'"),
        ({"schema_version": "2"}, "manifest.schema_version: expected an integer, got '2'"),
    ],
)  # fmt: skip
def test_a_wrong_type_is_refused_naming_the_field(change: dict[str, Any], message: str):
    with pytest.raises(ManifestError) as caught:
        Manifest.from_dict({**lineage(), **change})
    assert str(caught.value).startswith(message)


def test_a_newer_schema_is_refused_with_what_to_do():
    with pytest.raises(ManifestError, match=r"schema_version: 3 is newer .* upgrade mlops"):
        Manifest.from_dict({**lineage(), "schema_version": SCHEMA_VERSION + 1})


def test_unknown_keys_are_kept_and_written_back():
    data = {**lineage(), "schema_version": 2, "sbom": {"format": "cyclonedx"}}
    data["metrics"] = {"accuracy": 0.9, "auc": 0.95}
    manifest = Manifest.from_dict(data)
    assert manifest.extra == {"sbom": {"format": "cyclonedx"}}
    assert manifest.metrics.extra == {"auc": 0.95}
    written = manifest.to_dict()
    assert written["sbom"] == {"format": "cyclonedx"} and written["metrics"]["auc"] == 0.95
    assert Manifest.from_dict(written) == manifest


# -- registration requires the lineage -------------------------------------------------------------


@pytest.mark.parametrize(
    "missing", ["code", "dataset", "dataset.fingerprint", "dataset.split", "params", "parent", "gate"]
)
def test_register_refuses_a_manifest_missing_lineage(reg: Registry, model_dir, missing: str):
    manifest = lineage()
    *parents, leaf = missing.split(".")
    node = manifest
    for key in parents:
        node = node[key]
    del node[leaf]
    with pytest.raises(
        ManifestError, match=rf"^manifest\.{missing}: required to register a version, missing"
    ):
        reg.register(model_dir(), manifest, actor="a")
    assert not reg.store.root_exists() or reg.list() == []  # nothing registered, no number claimed
    assert reg.store.list("claims/") == []


def test_register_refuses_a_wrong_type_and_writes_nothing(reg: Registry, model_dir):
    manifest = lineage(metrics={"accuracy": "0.9"})
    with pytest.raises(
        ManifestError, match=r"^manifest\.metrics\.accuracy: expected a number or null, got '0\.9'"
    ):
        reg.register(model_dir(), manifest, actor="a")
    assert reg.store.list("claims/") == []


def test_register_writes_schema_2_with_the_same_keys(reg: Registry, model_dir):
    reg.register(model_dir(), lineage(), actor="a")
    stored = json.loads(reg.store.read("testing/xray/1/manifest.json"))
    assert stored["schema_version"] == 2
    _contains(stored, lineage())  # every key training gave, as given: other languages read the same file
    assert "annotations" not in stored


def test_annotations_go_through_their_types(reg: Registry, model_dir):
    reg.register(model_dir(), lineage(), actor="a")
    reg.annotate("testing:1", Deployment(target="local", result="ok", detail={"url": "u"}), actor="cd")
    [deployment] = reg.resolve("testing:1").manifest.annotations.deployments
    assert (deployment.target, deployment.result, deployment.actor) == ("local", "ok", "cd")
    with pytest.raises(Exception, match="TestRun"):
        reg.annotate("testing:1", {"target": "local"}, actor="cd")  # type: ignore[arg-type]  # a dict


def test_a_stored_manifest_with_a_wrong_type_is_refused_as_damage(reg: Registry, model_dir):
    reg.register(model_dir(), lineage(), actor="a")
    key = "testing/xray/1/manifest.json"
    stored = json.loads(reg.store.read(key))
    stored["gate"]["passed"] = "true"
    reg.store.write(key, json.dumps(stored).encode())
    with pytest.raises(IntegrityError, match=r"manifest\.gate\.passed: expected true or false"):
        reg.fetch("testing:1", refresh=True)


# -- schema 1: what the registry wrote before ------------------------------------------------------


def test_schema_1_manifests_load_with_their_values(old_registry: Registry):
    for area, version in (("testing", 1), ("testing", 2), ("production", 1)):
        raw = _stored(area, version)
        assert "schema_version" not in raw  # the fixture really is schema 1
        m = old_registry.resolve(f"{area}:{version}").manifest
        assert (m.schema_version, m.name, m.version, m.area) == (2, raw["name"], raw["version"], area)
        assert m.classes == tuple(raw["classes"])
        assert m.metrics.accuracy == raw["metrics"]["accuracy"]
        assert {c: x.recall for c, x in m.metrics.per_class.items()} == {
            c: x["recall"] for c, x in raw["metrics"]["per_class"].items()
        }
        assert m.dataset.fingerprint == raw["dataset"]["fingerprint"]
        assert m.dataset.source.kind == raw["dataset"]["source"]["kind"]
        assert m.gate is not None and m.gate.passed is raw["gate"]["passed"]
        assert m.params.mode == raw["params"]["mode"]
        assert {rel: f.sha256 for rel, f in m.files.items()} == {
            rel: f["sha256"] for rel, f in raw["files"].items()
        }
    retrained = old_registry.resolve("testing:2").manifest
    assert retrained.parent is not None and retrained.parent.ref == _stored("testing", 2)["parent"]["ref"]
    assert retrained.gate is not None and retrained.gate.baseline is not None
    assert retrained.gate.baseline.metrics is not None


def test_schema_1_annotations_load_typed(old_registry: Registry):
    notes = old_registry.resolve("production:1").manifest.annotations
    assert [t.passed for t in notes.tests] == [False, True]  # the first run failed, the rerun passed
    assert notes.tests[0].summary.failed == 2
    assert [a.approved_by for a in notes.approvals] == ["product-owner"]
    assert notes.approvals[0].identity == {"name": "product-owner", "source": "jenkins-input"}
    assert [d.result for d in notes.deployments] == ["ok"]
    assert notes.monitoring[0].records == 12
    assert old_registry.resolve("testing:2").manifest.annotations.canary[0].decision == "promote"
    assert policy_failures(old_registry.resolve("testing:1").manifest) == []  # tested and gated
    assert "no model test results" in policy_failures(old_registry.resolve("testing:2").manifest)[0]


@pytest.mark.parametrize(("area", "version"), [("testing", 1), ("testing", 2)])
def test_schema_1_manifests_round_trip(area: str, version: int):
    raw = _stored(area, version)
    manifest = Manifest.from_dict(raw)
    written = manifest.to_dict(annotations=False)
    _contains(written, {**raw, "schema_version": 2})  # nothing a reader used is lost or changed
    assert Manifest.from_dict(written) == manifest
    assert Manifest.from_dict(json.loads(json.dumps(written))) == manifest  # through JSON text too


def test_migrate_names_the_data_of_the_earliest_manifests():
    old = lineage()
    del old["dataset"]["source"]
    old["dataset"]["uri"] = "gs://bucket/xray"
    migrated = migrate(old)
    assert migrated["schema_version"] == 2
    assert migrated["dataset"]["source"] == {"kind": "gcs", "uri": "gs://bucket/xray", "revision": None}
    assert "source" not in old["dataset"]  # the input is not changed
