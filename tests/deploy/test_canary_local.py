"""`mlops deploy --target local --canary`: real `mlops serve` (gunicorn, TensorFlow) on loopback, under load.

Production serves v1; each candidate takes a share of the same socket while the analysis compares
both sides' /metrics. Candidates 3, 4 and 5 carry a fault (tests/deploy/fault_serve.py): errors on
one class, slow, collapsed to one class. Each must be pulled with production untouched and no
failed request on its side; candidate 2 (healthy) must be promoted.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import requests
from canary_models import brightness_images, save_brightness_model
from load import Load
from manifests import lineage
from trust_keys import sign_tests

import registry
from core.processes import free_port
from core.settings import load_settings
from deploy import local
from registry.manifest import TestRun

pytestmark = pytest.mark.slow

FAULT_SERVE = Path(__file__).with_name("fault_serve.py")
FAULTS = {3: "error:pneumonia", 4: "slow:0.5", 5: "collapse"}


def traffic(url: str, threads: int = 4) -> Load:
    """Concurrent clients on URL with images of every class (the brightness model's three)."""
    return Load(url, threads, images=brightness_images())


@pytest.fixture
def candidates(settings, promote, trust, tmp_path, monkeypatch) -> None:
    """v1 promoted to production; v2..v5 the same model registered again (faults come at serve time),
    each with a signed passing test run; a passing canary promotes with the approver's key."""
    reg = registry.open_registry(settings)
    manifest = save_brightness_model(tmp_path / "brightness")
    first = reg.register(tmp_path / "brightness", lineage(**manifest), actor="test")
    promote(reg, first.ref, actor="test", reason="canary baseline")
    for _ in range(4):
        candidate = reg.register(tmp_path / "brightness", lineage(**manifest), actor="test")
        # Each would pass the promotion policy: only the canary's verdict keeps a faulty one out.
        reg.annotate(candidate.ref, TestRun(passed=True, suite="fixture"), actor="ci")
        sign_tests(reg, candidate.ref, trust)
    monkeypatch.setenv("MLOPS_TRUST_APPROVER_KEY", str(trust.key("product-owner")))


@pytest.fixture
def canary_env(monkeypatch) -> int:
    """The real serve command with faults for v3..v5, small workers, and a short analysis."""
    monkeypatch.setenv("MLOPS_DEPLOY_SERVE_COMMAND", f"{sys.executable} {FAULT_SERVE}")
    monkeypatch.setenv("MLOPS_FAULT_INJECT", ",".join(f"{v}={f}" for v, f in FAULTS.items()))
    monkeypatch.setenv("MLOPS_API_WORKERS", "2")
    monkeypatch.setenv("MLOPS_API_THREADS", "2")
    monkeypatch.setenv("MLOPS_CANARY_REQUESTS", "120")
    monkeypatch.setenv("MLOPS_CANARY_MIN_REQUESTS", "50")
    monkeypatch.setenv("MLOPS_CANARY_INTERVAL_S", "1")
    monkeypatch.setenv("MLOPS_CANARY_DURATION_S", "120")
    monkeypatch.setenv("MLOPS_MONITOR_LOG_PREDICTIONS", "false")
    return free_port()


def _note(line: str) -> None:
    """Past capsys to the terminal (with -s): the reasons and the measured split, for the record."""
    os.write(2, (line + "\n").encode())


def _audit_canary_events() -> list[dict]:
    return [e for e in registry.open_registry(load_settings()).audit() if e.get("action") == "canary"]


def test_faulty_candidates_are_pulled_and_a_healthy_one_promoted(cli, candidates, canary_env):
    port = canary_env
    try:
        first = cli("deploy", "--target", "local", "--model", "production:1", "--port", str(port), "--json")
        assert first.code == 0, first.err[-2000:]
        url = json.loads(first.out)["url"]
        baseline_pid = local.load_state(load_settings())["current"]["pid"]

        for version, fault in FAULTS.items():
            with traffic(url) as load:
                pulled = cli(
                    "deploy", "--target", "local", "--model", f"testing:{version}", "--canary", "25", "--json"
                )
            assert pulled.code == 3, f"{fault}: {pulled.out[-1500:]} {pulled.err[-2000:]}"
            outcome = json.loads(pulled.out)
            assert outcome["decision"] == "pulled" and outcome["reasons"], outcome
            assert outcome["figures"]["baseline"]["errors"] == 0, outcome["figures"]
            # Only the faulty side may fail a request, and only with its own injected error.
            assert all("HTTP 500" in f for f in load.failures), load.failures[:3]
            assert set(load.versions) <= {1, version} and load.versions[1] > 0, load.versions
            state = local.load_state(load_settings())
            assert state["current"]["pid"] == baseline_pid and state["current"]["version"] == 1
            assert not state.get("canary")
            assert requests.get(f"{url}/model", timeout=10).json()["version"] == 1
            assert registry.open_registry(load_settings()).pointer()["current"] == 1  # nothing promoted
            _note(f"{fault}: {outcome['reasons']} split {outcome['split']}")
        kinds = [" ".join(e["reasons"]) for e in _audit_canary_events()]
        assert "error rate" in kinds[0] and "p99 latency" in kinds[1] and "class shares" in kinds[2], kinds

        with traffic(url) as load:
            healthy = cli("deploy", "--target", "local", "--model", "testing:2", "--canary", "25", "--json")
        assert healthy.code == 0, healthy.out[-1500:] + healthy.err[-2000:]
        outcome = json.loads(healthy.out)
        assert outcome["decision"] == "promoted" and outcome["verdict"] == "pass"
        assert load.failures == [], load.failures[:5]
        assert load.versions[1] > 0 and load.versions[2] > 0
        assert outcome["figures"]["canary"]["requests"] >= 120
        split = outcome["split"]
        assert (
            split["canary"] == 1
            and split["baseline"] == 2
            and split["expected_share"] == pytest.approx(1 / 3, 1e-3)
        )
        assert abs(split["measured_share"] - split["expected_share"]) < 0.15, split
        _note(f"healthy: split {split}")
        assert requests.get(f"{url}/model", timeout=10).json()["version"] == 2
        # Promoted under the registry's policy, and the API now serves the production copy.
        assert registry.open_registry(load_settings()).pointer()["current"] == 2
        assert local.load_state(load_settings())["current"]["ref"] == "production:2"
        events = _audit_canary_events()
        assert [e["decision"] for e in events] == ["pulled", "pulled", "pulled", "promoted"]
        manifest = registry.open_registry(load_settings()).resolve("testing:2").manifest
        assert manifest.annotations.canary[-1].decision == "promoted"
    finally:
        cli("deploy", "--target", "local", "--stop")


def test_canary_needs_a_running_production(cli, candidates, canary_env):
    done = cli(
        "deploy", "--target", "local", "--model", "testing:2", "--canary", "10", "--port", str(canary_env)
    )
    assert done.code == 2
    assert "deploy normally first" in done.err
    assert not local.load_state(load_settings())
