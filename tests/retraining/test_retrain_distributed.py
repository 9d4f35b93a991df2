"""mlops retrain under MirroredStrategy on 2 logical CPU devices (a subprocess: devices are fixed then)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

MLOPS = [sys.executable, "-m", "mlops.cli"]
FAST = ("--epochs", "2", "--accuracy-threshold", "0", "--recall-floor", "0", "--json")


def test_retrain_fine_tunes_under_a_mirrored_strategy(demo, tmp_path):
    env = {**os.environ, "MLOPS_HOME": str(tmp_path / ".mlops"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    trained = subprocess.run(
        [*MLOPS, "train", "--data", str(demo), "--image-size", "32", *FAST],
        env=env,
        capture_output=True,
        text=True,
    )
    assert trained.returncode == 0, trained.stderr
    retrained = subprocess.run(
        [*MLOPS, "retrain", "--data", str(demo), "--force", "--strategy", "mirrored", *FAST],
        env={**env, "MLOPS_TRAIN_CPU_DEVICES": "2"},
        capture_output=True,
        text=True,
    )
    assert retrained.returncode == 0, retrained.stderr
    assert "strategy mirrored: 1 process, 2 replicas in sync on CPU" in retrained.stderr
    summary = json.loads(retrained.stdout)
    assert summary["ref"] == "testing:2" and summary["parent"]["ref"] == "testing:1"
    manifest = json.loads(
        (tmp_path / ".mlops" / "registry" / "testing" / "xray-classifier" / "2" / "manifest.json").read_text()
    )
    params = manifest["params"]
    assert (params["mode"], params["strategy"], params["replicas"], params["image_size"]) == (
        "retrain",
        "mirrored",
        2,
        32,
    )
