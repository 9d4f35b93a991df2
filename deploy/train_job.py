"""`mlops train-job`: run `mlops train` as the distributed Indexed Job on a Kubernetes cluster and wait.

Renders k8s/training/distributed (or an overlay of it, e.g. overlays/gpu-node-pool) with the real
`kubectl kustomize`, then sets this run's Job name, worker count (completions, parallelism and
MLOPS_TRAIN_WORKERS together: they must agree) and dataset; applies it, waits for the Job to
complete or fail, and prints the chief's (pod 0's) JSON summary, the one `mlops train --json` prints.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from core.errors import CheckFailed, MlopsError, UsageError
from core.settings import Settings
from deploy.k8s import _run, kubectl_path

TARGETS = {"distributed": "training/distributed", "gpu-node-pool": "training/overlays/gpu-node-pool"}
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
POLL_S = 10.0


def _say(message: str) -> None:
    print(f"train-job: {message}", file=sys.stderr, flush=True)


def render_job(
    settings: Settings, target: str, name: str, workers: int, data: str, extra: list[str]
) -> list[dict]:
    """The manifests to apply: the target rendered, then this run's name, workers and dataset set."""
    if target not in TARGETS:
        raise UsageError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    if workers < 2:
        raise UsageError(
            f"--workers must be at least 2 (one worker: mlops train, or k8s/training), got {workers}"
        )
    source = Path(settings.deploy.k8s_dir) / TARGETS[target]
    done = _run([kubectl_path(settings), "kustomize", str(source)], timeout_s=120)
    if done.returncode != 0:
        raise MlopsError(f"kubectl kustomize {source} failed: {done.stderr.strip()}")
    documents = [d for d in yaml.safe_load_all(done.stdout) if d]
    jobs = [d for d in documents if d["kind"] == "Job"]
    if len(jobs) != 1:
        raise MlopsError(f"{source} renders {len(jobs)} Jobs; expected the one Indexed Job")
    job = jobs[0]
    job["metadata"]["name"] = name  # Jobs are immutable: one name per run
    job["spec"]["completions"] = job["spec"]["parallelism"] = workers
    (container,) = job["spec"]["template"]["spec"]["containers"]
    container["args"] = ["train", "--data", data, "--strategy", "multi-worker", "--json", *extra]
    for env in container["env"]:
        if env["name"] == "MLOPS_TRAIN_WORKERS":
            env["value"] = str(workers)
    return documents


def plan(settings: Settings, namespace: str, name: str) -> list[list[str]]:
    """The kubectl commands a run issues, in order (the second one is polled until the Job ends)."""
    kubectl = kubectl_path(settings)
    chief = f"{JOB_NAME_LABEL}={name},{INDEX_LABEL}=0"
    return [
        [kubectl, "apply", "-f", "-"],
        [kubectl, "get", f"job/{name}", "-n", namespace, "-o", "json"],
        [kubectl, "logs", "-n", namespace, "-l", chief, "--tail=-1"],
    ]


def _state(settings: Settings, namespace: str, name: str) -> str | None:
    """ "Complete", "Failed", or None while the Job runs."""
    done = _run([kubectl_path(settings), "get", f"job/{name}", "-n", namespace, "-o", "json"], timeout_s=60)
    if done.returncode != 0:
        raise MlopsError(f"kubectl get job/{name} failed: {done.stderr.strip()}")
    for condition in json.loads(done.stdout).get("status", {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return condition["type"]
    return None


def chief_summary(logs: str) -> dict[str, Any]:
    """The JSON summary at the end of pod 0's log (stderr progress lines come before it)."""
    lines = logs.splitlines()
    starts = [i for i, line in enumerate(lines) if line == "{"]
    if not starts:
        raise MlopsError("the chief's log holds no JSON summary; see kubectl logs")
    return json.loads("\n".join(lines[starts[-1] :]))


def run_job(settings: Settings, documents: list[dict], name: str, timeout_s: int) -> dict[str, Any]:
    """Apply, wait for the Job to finish, return the chief's summary (CheckFailed when it fails)."""
    kubectl = kubectl_path(settings)
    job = next(d for d in documents if d["kind"] == "Job")
    namespace = job["metadata"].get("namespace", "default")
    manifests = yaml.safe_dump_all(documents, sort_keys=False)
    applied = _run([kubectl, "apply", "-f", "-"], timeout_s=120, stdin=manifests)
    if applied.returncode != 0:
        raise MlopsError(f"kubectl apply failed: {applied.stderr.strip()}")
    _say(f"job/{name} in {namespace}: {job['spec']['completions']} workers started")
    deadline = time.monotonic() + timeout_s
    while (state := _state(settings, namespace, name)) is None:
        if time.monotonic() > deadline:
            raise MlopsError(
                f"job/{name} did not finish within {timeout_s} s; it keeps running (kubectl delete it)"
            )
        time.sleep(POLL_S)
    chief = f"{JOB_NAME_LABEL}={name},{INDEX_LABEL}=0"
    logs = _run([kubectl, "logs", "-n", namespace, "-l", chief, "--tail=-1"], timeout_s=120)
    if state == "Failed":
        try:
            summary = chief_summary(logs.stdout)
        except (MlopsError, ValueError):
            summary = None
        if summary and summary.get("gate"):  # the chief ran to the gate, which said no (exit 3)
            failed = CheckFailed(
                f"job/{name}: the gate failed; nothing registered (report: {summary['report']})"
            )
            failed.summary = summary  # printed with --json, as by mlops train
            raise failed
        raise MlopsError(
            f"job/{name} failed (a worker died, or the run erred); nothing registered: "
            f"kubectl logs -l {chief}"
        )
    return chief_summary(logs.stdout)
