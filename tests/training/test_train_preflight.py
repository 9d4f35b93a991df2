"""`mlops train` checks the registry and the signing key before it trains: a doomed run fails at once."""

from __future__ import annotations

import time

from registry import open_registry


def test_an_unwritable_registry_stops_train_before_training(cli, demo, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # the registry would live under a file: nothing can be written
    start = time.monotonic()
    result = cli("--registry", f"file://{blocker}/registry", "train", "--data", str(demo))
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert lines[-1].startswith(f"mlops train: error: registry file://{blocker}/registry is not writable")
    assert not any("epoch" in line or "split" in line for line in lines)  # nothing was trained
    assert time.monotonic() - start < 30


def test_required_signing_without_a_key_stops_train_and_is_recorded(cli, demo, settings, monkeypatch):
    monkeypatch.setenv("MLOPS_SIGNING_REQUIRED", "true")
    result = cli("train", "--data", str(demo), "--actor", "nightly")
    assert result.code == 1
    assert "signing is required but no private key is configured" in result.err
    reg = open_registry(settings)
    assert reg.list() == []
    [refusal] = reg.audit()
    assert (refusal["action"], refusal["attempted"], refusal["actor"]) == ("refuse", "train", "nightly")
