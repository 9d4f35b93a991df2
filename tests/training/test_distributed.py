"""Distribution strategies for real: MirroredStrategy on 2 logical CPU devices, MultiWorkerMirroredStrategy
with 2 `mlops train` processes on loopback, a killed worker, and the usage errors.

Each distributed run is its own `mlops train` subprocess: logical devices and the collective server
are fixed once per process. The tolerance on accuracy: the runs are not bit-identical (per-replica
BatchNorm statistics, another summation order of the gradients), and on this test split (16 images)
one image is 0.0625, so two images' worth (0.13) is allowed; in practice all of them score the same.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.processes import free_port, terminate

TOLERANCE = 0.13
# Enough epochs to converge on the demo data; patience high so early stopping cannot cut a run short
# on BatchNorm's noisy first validation losses (the comparison is about the strategies, not the stop).
TRAIN = ("--epochs", "20", "--image-size", "32", "--accuracy-threshold", "0", "--recall-floor", "0")
ENV = {"MLOPS_TRAIN_EARLY_STOPPING_PATIENCE": "100", "TF_CPP_MIN_LOG_LEVEL": "2"}
MLOPS = [sys.executable, "-m", "mlops.cli"]


def _env(home: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, **ENV, "MLOPS_HOME": str(home), **extra}


def _train(home: Path, data: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MLOPS, "train", "--data", str(data), *TRAIN, "--json", *args],
        env=_env(home, **env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _versions(home: Path) -> list[dict]:
    from core.settings import load_settings
    from registry import open_registry

    settings = load_settings(env={"MLOPS_HOME": str(home)})
    return open_registry(settings).list("testing")


def _tf_config(ports: list[int], index: int) -> str:
    workers = [f"127.0.0.1:{port}" for port in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def _start_workers(home: Path, data: Path, logs: Path, **env: str) -> list[subprocess.Popen]:
    """Two `mlops train --strategy multi-worker` processes on loopback, stdout/stderr to files."""
    ports = [free_port(), free_port()]
    procs = []
    for index in range(2):
        cmd = [*MLOPS, "train", "--data", str(data), *TRAIN, "--json", "--strategy", "multi-worker"]
        with (logs / f"w{index}.out").open("w") as out, (logs / f"w{index}.err").open("w") as err:
            env_i = _env(home, TF_CONFIG=_tf_config(ports, index), **env)
            procs.append(subprocess.Popen(cmd, env=env_i, stdout=out, stderr=err, text=True))
    return procs


@pytest.fixture(scope="module")
def demo60(tmp_path_factory) -> Path:
    """180 demo images (60 per class, 32 px): a test split of 16 images."""
    from training.demo_data import write_demo_data

    out = tmp_path_factory.mktemp("demo60") / "demo"
    write_demo_data(out, batch=1, per_class=60, size=32)
    return out


@pytest.fixture(scope="module")
def snapshot60(demo60, tmp_path_factory) -> Path:
    """demo60 as a TFRecord snapshot with 2 shards per split: one per worker, so sharded by file."""
    out = tmp_path_factory.mktemp("snap60") / "snap"
    cmd = [*MLOPS, "dataset", "snapshot", "--data", str(demo60), "--out", str(out), "--image-size", "32"]
    done = subprocess.run(
        [*cmd, "--shards", "2"], env=_env(out.parent / ".mlops"), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def single(demo60, tmp_path_factory) -> dict:
    """The single-process run every strategy is compared with (same data, same seed)."""
    home = tmp_path_factory.mktemp("single") / ".mlops"
    done = _train(home, demo60, "--strategy", "one")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
def test_mirrored_on_two_cpu_devices_matches_one_device(demo60, single, tmp_path):
    home = tmp_path / ".mlops"
    done = _train(home, demo60, "--strategy", "mirrored", MLOPS_TRAIN_CPU_DEVICES="2")
    assert done.returncode == 0, done.stderr
    assert "strategy mirrored: 1 process, 2 replicas in sync on CPU, float32" in done.stderr
    summary = json.loads(done.stdout)
    assert abs(summary["metrics"]["accuracy"] - single["metrics"]["accuracy"]) <= TOLERANCE
    (version,) = _versions(home)
    params = version.manifest.to_dict()["params"]
    assert (params["strategy"], params["replicas"], params["workers"]) == ("mirrored", 2, 1)
    assert params["devices"] == ["CPU", "CPU"] and params["mixed_precision"] is False
    assert (params["global_batch_size"], params["per_replica_batch_size"]) == (32, 16)
    shown = subprocess.run(
        [*MLOPS, "registry", "show", "testing:1"], env=_env(home), capture_output=True, text=True
    )
    assert "strategy mirrored, 2 replica(s) on 1 worker(s), CPU, float32, global batch 32" in shown.stdout


@pytest.mark.slow
def test_two_workers_on_loopback_register_exactly_one_version(snapshot60, single, tmp_path):
    """Two workers on the demo data's snapshot (each reads its own shard) vs one process on the folder."""
    home = tmp_path / ".mlops"
    procs = _start_workers(home, snapshot60, tmp_path)
    codes = [proc.wait(timeout=300) for proc in procs]
    err = [(tmp_path / f"w{i}.err").read_text() for i in range(2)]
    assert codes == [0, 0], err
    assert "worker 0 of 2 (chief), 2 replicas in sync on CPU" in err[0]
    assert "inputs for 2 workers: train sharded by file, 5 steps per epoch" in err[0]
    assert "worker 1 of 2: training done; the chief (worker 0) evaluates and registers" in err[1]
    # The same epochs on both: the validation loss is all-reduced, so early stopping agrees.
    epochs = [[line for line in e.splitlines() if line.startswith("epoch ")] for e in err]
    assert [line.split(" (")[0] for line in epochs[0]] == [line.split(" (")[0] for line in epochs[1]]
    chief = json.loads((tmp_path / "w0.out").read_text())
    worker = json.loads((tmp_path / "w1.out").read_text())
    assert chief["ref"] == "testing:1" and worker["ref"] is None and worker["skipped"] is True
    (version,) = _versions(home)  # one version: the worker wrote nothing
    assert not list((home / "runs").iterdir())[1:]  # one run folder: the chief's
    assert abs(chief["metrics"]["accuracy"] - single["metrics"]["accuracy"]) <= TOLERANCE
    assert chief["dataset"]["fingerprint"] == single["dataset"]["fingerprint"]
    params = version.manifest.to_dict()["params"]
    assert (params["strategy"], params["replicas"], params["workers"]) == ("multi-worker", 2, 2)


@pytest.mark.slow
def test_a_killed_worker_fails_the_run_and_registers_nothing(demo60, tmp_path):
    home = tmp_path / ".mlops"
    procs = _start_workers(home, demo60, tmp_path, MLOPS_TRAIN_COLLECTIVE_TIMEOUT_S="20")
    chief, worker = procs
    try:
        deadline = time.monotonic() + 240
        while "epoch 2/" not in (tmp_path / "w1.err").read_text():
            assert time.monotonic() < deadline and worker.poll() is None, (tmp_path / "w1.err").read_text()
            time.sleep(0.1)
        os.kill(worker.pid, signal.SIGKILL)
        killed = time.monotonic()
        code = chief.wait(timeout=90)  # the collective timeout (20 s) bounds it; a hang fails here
        waited = time.monotonic() - killed
    finally:
        for proc in procs:
            terminate(proc) if proc.poll() is None else None
    err = (tmp_path / "w0.err").read_text()
    assert "inputs for 2 workers: train sharded by data" in err  # the folder: no shards to split
    assert code == 1, err
    assert "multi-worker training failed on worker 0 of 2" in err and "Nothing was registered" in err
    assert waited < 60
    assert _versions(home) == []
    print(f"chief failed {waited:.1f} s after the worker was killed, exit {code}")


def test_unknown_strategy_is_a_usage_error(cli, demo):
    result = cli("train", "--data", str(demo), "--strategy", "parameter-server")
    assert result.code == 2
    assert "invalid choice: 'parameter-server'" in result.err


def test_mirrored_with_one_device_says_so(cli, demo, settings):
    result = cli("train", "--data", str(demo), "--strategy", "mirrored", "--epochs", "1")
    assert result.code == 2, result.err
    assert "--strategy mirrored needs more than one device; this machine shows 1" in result.err
    assert _versions(settings.home) == []


def test_multi_worker_needs_a_cluster(cli, demo):
    result = cli("train", "--data", str(demo), "--strategy", "multi-worker", "--epochs", "1")
    assert result.code == 2
    assert "needs TF_CONFIG naming at least 2 workers" in result.err


def test_a_cluster_with_a_single_device_strategy_is_refused(cli, demo, monkeypatch):
    """Each worker would train alone and register its own version."""
    monkeypatch.setenv("TF_CONFIG", _tf_config([1, 2], 1))
    result = cli("train", "--data", str(demo), "--strategy", "one", "--epochs", "1")
    assert result.code == 2
    assert "TF_CONFIG names 2 workers but the strategy is one" in result.err


def test_mixed_precision_keeps_a_float32_output_and_registers_a_float32_model():
    import keras
    import numpy as np

    from training.distribute import plain_copy
    from training.model import build_model

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model("small_cnn", 32, 1, 3)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.layers[1].compute_dtype == "float16"
    assert model.output.dtype == "float32"
    served = plain_copy(model)  # what the chief evaluates and registers: CPUs serve it
    assert {layer.compute_dtype for layer in served.layers} == {"float32"}
    for mine, theirs in zip(served.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
