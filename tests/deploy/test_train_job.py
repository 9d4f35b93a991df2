"""`mlops train-job`: the distributed Indexed Job rendered for one run (real kustomize, strict schema)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.settings import DeploySettings
from deploy.train_job import chief_summary

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _k8s_dir(monkeypatch):
    monkeypatch.setenv("MLOPS_DEPLOY_K8S_DIR", str(ROOT / "k8s"))


@pytest.mark.parametrize(("target", "image"), [("distributed", "latest"), ("gpu-node-pool", "gpu")])
def test_dry_run_renders_one_valid_job_with_this_runs_workers_and_data(cli, target, image):
    result = cli(
        "train-job", "--data", "gs://mlops-datasets/snap", "--workers", "3", "--target", target,
        "--name", "xray-train-41", "--dry-run", "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    assert plan["job"] == "xray-train-41" and plan["namespace"] == "mlops" and plan["workers"] == 3
    assert [c[1:3] for c in plan["commands"]] == [
        ["apply", "-f"],
        ["get", "job/xray-train-41"],
        ["logs", "-n"],
    ]
    (job,) = [d for d in plan["manifests"] if d["kind"] == "Job"]
    assert job["metadata"]["name"] == "xray-train-41"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 3
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"mlops-xray-train:{image}"
    assert container["args"] == [
        "train",
        "--data",
        "gs://mlops-datasets/snap",
        "--strategy",
        "multi-worker",
        "--json",
    ]
    assert {"name": "MLOPS_TRAIN_WORKERS", "value": "3"} in container["env"]
    validated = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubernetes_validate",
            "--strict",
            "--quiet",
            "-k",
            DeploySettings().kubernetes_version,
            "-",
        ],
        input=yaml.safe_dump_all(plan["manifests"]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr


def test_one_worker_is_a_usage_error(cli):
    result = cli("train-job", "--data", "gs://b/s", "--workers", "1", "--dry-run")
    assert result.code == 2 and "--workers must be at least 2" in result.err


def test_the_chiefs_summary_is_the_json_after_its_progress_lines():
    summary = {"ref": "testing:4", "version": 4}
    logs = 'worker 0 of 2 (chief)\nepoch 1/3: loss 1.0\n{\n "inner": {\n}\n}\n' + json.dumps(
        summary, indent=1
    )
    assert chief_summary(logs) == summary
