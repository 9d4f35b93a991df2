"""`mlops test-model` verifies the registry's copy first: one clear line, no suite run, a refusal event."""

from __future__ import annotations

import re

import pytest
from manifests import lineage

from registry import open_registry


@pytest.fixture
def tampered(cli, settings, tmp_path):
    """A signed version whose registry copy was replaced after a clean copy was cached."""
    assert cli("keys", "init").code == 0
    reg = open_registry(settings)
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.keras").write_bytes(b"the tested model")
    reg.register(src, lineage(**{"model_file": "model.keras", "gate": {"passed": True}}), actor="ci")
    reg.fetch("testing:1")  # the cache holds the good copy
    reg.store.write(f"testing/{reg.name}/1/model.keras", b"an evil model!!!")  # same size, other bytes
    return reg


def test_a_tampered_registry_copy_stops_test_model_before_the_suite(cli, tampered):
    result = cli("test-model", "testing:1", "--actor", "jenkins")
    assert result.code == 1
    [line] = result.err.strip().splitlines()
    assert re.fullmatch(
        r"mlops test-model: error: testing:1: file model\.keras has sha256 [0-9a-f]{16}\.\.\., manifest says "
        r"[0-9a-f]{16}\.\.\.: the registry copy is corrupt or tampered; do not use it",
        line,
    )
    assert "collected" not in result.err + result.out  # pytest never started
    assert tampered.resolve("testing:1").manifest.annotations.tests == ()
    refusal = tampered.audit()[-1]
    assert (refusal["action"], refusal["attempted"], refusal["actor"]) == ("refuse", "test-model", "jenkins")
