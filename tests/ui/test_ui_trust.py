"""The version page shows the signed chain (who signed what, when) when a trust policy is in force."""

from __future__ import annotations

import os
from pathlib import Path

from manifests import lineage
from trust_keys import SUITE, make_trust

from core.settings import load_settings
from registry import open_registry
from registry.chain import attest


def test_the_version_page_shows_who_signed_each_link(tmp_path: Path, monkeypatch):
    from ui import create_app

    monkeypatch.setenv("MLOPS_REGISTRY", f"file://{tmp_path / 'registry'}")
    trust = make_trust(tmp_path / "trust", monkeypatch)
    reg = open_registry(load_settings())
    src = tmp_path / "run"
    src.mkdir()
    (src / "model.keras").write_bytes(os.urandom(512))
    manifest = lineage(["a", "b"])
    tested = reg.register(src, manifest, actor="ci")
    untested = reg.register(src, manifest, actor="ci")
    local = reg.fetch(tested.ref)
    facts = {"passed": True, "summary": {"passed": 3, "failed": 0}, "suite_digest": SUITE, "with_api": True}
    attest(reg, local.version, local.digest, "tests", facts, trust.key("ci-tester"))
    reg.promote(tested.ref, expected_production=None, approver_key=trust.key("product-owner"))
    client = create_app({"TESTING": True, "SETTINGS": load_settings()}).test_client()
    html = client.get(f"/versions/{tested.version}").get_data(as_text=True)
    chain = html[html.index('id="chain"') :]
    assert "Signed chain: verified" in chain
    assert "ci-trainer" in chain and "ci-tester" in chain and "product-owner" in chain
    other = client.get(f"/versions/{untested.version}").get_data(as_text=True)
    assert "Signed chain: NOT verified" in other and "no model test result signed by a tester key" in other
