"""The training image runs the Kubernetes training Job's container spec: train, retrain, gate, test, promote.

Each run takes the Job's container exactly as `kubectl kustomize k8s/training` renders it (command,
args, env, user, read-only root, emptyDir mounts, dropped capabilities, no privilege escalation,
limits); only the registry URI and the dataset argument are swapped for mounted folders, and the CPU
image stands in for the GPU one (no GPU here).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from containers import (
    SIGNING_MOUNT,
    TRAIN_IMAGE,
    TRUST_MOUNT,
    docker,
    host_mlops,
    job_container,
    run_job,
    shared_dir,
    show,
)
from podspec import docker_run_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_job_spec_is_restricted_and_asks_for_a_gpu():
    pod, container = job_container()
    mounts = {SIGNING_MOUNT: "/keys", TRUST_MOUNT: "/trust"}
    run = docker_run_for(pod, "train", {}, image=TRAIN_IMAGE, host_mounts=mounts)
    assert "/keys:/etc/mlops/signing:ro" in run.flags  # the Secret volumes, read-only
    assert "/trust:/etc/mlops/trust:ro" in run.flags
    assert run.argv[0] == "train" and "--data" in run.argv
    assert "--read-only" in run.flags and "--cap-drop=ALL" in run.flags
    assert run.flags[:2] == ["--user", "10001:10001"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    # The Job runs the GPU build of the training image (make images-gpu builds it).
    assert container["image"].endswith(":gpu"), container["image"]


def test_train_in_the_job_container_registers_a_version_with_lineage(job_registry, demo_data):
    manifest = show(job_registry, "testing:1")
    assert manifest["version"] == 1 and manifest["gate"]["passed"] is True
    assert manifest["dataset"]["uri"] == "/data"
    counts = manifest["dataset"]["class_counts"]
    expected = {d.name: len(list(d.glob("*.png"))) for d in demo_data.iterdir() if d.is_dir()}
    assert counts == expected
    assert manifest["params"]["mode"] == "train"
    assert manifest["frameworks"]["tensorflow"] == "2.21.0"
    # Signed in the container with the key from the Job's Secret volume.
    assert (job_registry / "testing" / "xray-classifier" / "1" / "model.sig").is_file()
    # Files were written by the container's non-root user, not root.
    owner = (job_registry / "testing").stat().st_uid
    assert owner == 10001, owner


def test_retrain_in_the_job_container_records_its_parent(job_registry, demo_data, keys, tmp_path):
    pushed = tmp_path / "data"
    shutil.copytree(demo_data, pushed)
    added = subprocess.run(
        [str(Path(sys.executable).parent / "mlops"), "demo-data", "--out", str(pushed), "--batch", "2",
         "--per-class", "10"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    done = run_job(job_registry, pushed, keys, verb="retrain")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    manifest = show(job_registry, "testing:latest")
    assert manifest["version"] == 2
    assert manifest["parent"]["version"] == 1
    assert manifest["params"]["mode"] == "retrain"


def test_gate_failure_in_the_container_exits_3_and_registers_nothing(job_registry, demo_data, keys):
    before = host_mlops(job_registry, "registry", "list", "--json")
    done = run_job(job_registry, demo_data, keys, env={"MLOPS_GATE_ACCURACY_THRESHOLD": "1.01"})
    assert done.returncode == 3, done.stdout[-2000:] + done.stderr[-2000:]
    assert "gate" in (done.stdout + done.stderr).lower()
    assert host_mlops(job_registry, "registry", "list", "--json").stdout == before.stdout


def test_training_image_runs_as_non_root_with_the_mlops_entrypoint(images):
    config = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", TRAIN_IMAGE).stdout)
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["mlops"]
    done = docker("run", "--rm", TRAIN_IMAGE, "--help")
    for verb in ("train", "retrain", "test-model", "promote", "pipeline", "monitor"):
        assert verb in done.stdout


def test_the_job_container_trains_on_a_git_dataset_at_a_revision(images, demo_data, keys, tmp_path):
    """`--data git+file://...@REV` in the training image: the real git checks out the pushed commit."""
    repo = tmp_path / "dataset"
    shutil.copytree(demo_data, repo)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "demo data"]):
        subprocess.run(["git", "-C", str(repo), *args] if args[0] != "commit" else [*git, *args], check=True)
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    for path in [tmp_path, *tmp_path.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o055)  # readable by the container's uid
        if os.geteuid() == 0:  # git refuses to read a repository another user owns (safe.directory)
            os.chown(path, 10001, 10001)
    registry = shared_dir(tmp_path / "registry")
    done = run_job(registry, tmp_path, keys, extra_args=("--data", f"git+file:///data/dataset@{commit[:10]}"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    source = show(registry, "testing:1")["dataset"]["source"]
    assert source["kind"] == "git" and source["revision"] == commit, source
