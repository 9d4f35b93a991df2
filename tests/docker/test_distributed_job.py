"""The distributed training Job's pods as containers: TF_CONFIG from the completion index, one version.

Both containers take the container spec `kubectl kustomize k8s/training/distributed` renders, on one
Docker network where each has the name Kubernetes gives pod i of an Indexed Job behind the headless
Service (`<job>-<i>.<service>`). Docker sets what Kubernetes would: the hostname and
JOB_COMPLETION_INDEX. Swapped as in the single Job's tests: the registry and dataset for mounted
folders, and (to keep it short) two epochs and no gate thresholds.
"""

from __future__ import annotations

import json
import uuid

import pytest
from containers import TRAIN_IMAGE, docker, host_mlops, job_mounts, one, render, shared_dir, show
from podspec import docker_run_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# The Job's plumbing is under test, not the model: a 2-epoch model passes a gate that asks nothing.
QUICK = {
    "MLOPS_TRAIN_EPOCHS": "2",
    "MLOPS_GATE_ACCURACY_THRESHOLD": "0",
    "MLOPS_GATE_RECALL_FLOOR": "0",
    "MLOPS_GATE_MAX_ECE": "1",
}


def test_indexed_job_pods_build_tf_config_and_only_the_chief_registers(images, demo_data, keys, tmp_path):
    documents = render("training/distributed")
    job = one(documents, "Job")
    pod = json.loads(json.dumps(job["spec"]["template"]["spec"]))
    (container,) = pod["containers"]
    container["args"][container["args"].index("--data") + 1] = "/data"
    registry = shared_dir(tmp_path / "registry")
    network = f"mlops-test-dist-{uuid.uuid4().hex[:8]}"
    docker("network", "create", network)
    names = [f"{network}-{i}" for i in range(job["spec"]["completions"])]
    try:
        for index, name in enumerate(names):
            env = {"MLOPS_REGISTRY": "file:///registry", "JOB_COMPLETION_INDEX": str(index), **QUICK}
            run = docker_run_for(
                pod, "train", {}, image=TRAIN_IMAGE, env_overrides=env, host_mounts=job_mounts(keys)
            )
            hostname = f"{job['metadata']['name']}-{index}"  # how Kubernetes names pod i of an Indexed Job
            flags = [*run.flags, "-v", f"{registry}:/registry", "-v", f"{demo_data}:/data:ro", "--name", name]
            flags += [
                "--network",
                network,
                "--hostname",
                hostname,
                "--network-alias",
                f"{hostname}.{pod['subdomain']}",
            ]
            docker("run", "-d", *flags, run.image, *run.argv)
        codes = [int(docker("wait", name, timeout=900).stdout.strip()) for name in names]
        logs = [docker("logs", name).stderr for name in names]
    finally:
        docker("rm", "-f", *names, check=False)
        docker("network", "rm", network, check=False)
    assert codes == [0, 0], "\n----\n".join(log[-3000:] for log in logs)
    assert "worker 0 of 2 (chief)" in logs[0] and "strategy multi-worker: worker 0 of 2 (chief)" in logs[0]
    assert "worker 1 of 2: training done; the chief (worker 0) evaluates and registers" in logs[1]
    listed = json.loads(host_mlops(registry, "registry", "list", "--json").stdout)
    assert [v["version"] for v in listed["versions"]] == [1]
    params = show(registry, "testing:1")["params"]
    assert (params["strategy"], params["workers"], params["replicas"]) == ("multi-worker", 2, 2)
