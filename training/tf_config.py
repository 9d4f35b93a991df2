"""TF_CONFIG for MultiWorkerMirroredStrategy: read it, or build it from an Indexed Job's completion index.

No TensorFlow here: the CLI calls `export_tf_config` before TensorFlow starts, because TensorFlow
reads TF_CONFIG once, when the strategy is made. In a Kubernetes Indexed Job with a headless
Service as its subdomain, pod i is reachable as `<job>-<i>.<service>` and its hostname is
`<job>-<i>`; Kubernetes sets JOB_COMPLETION_INDEX itself, the manifest sets the worker count, the
Service name and the port as plain values (train.workers, train.worker_service, train.worker_port).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

from core.errors import UsageError
from core.numbers import ascii_int
from core.settings import TrainSettings


@dataclass(frozen=True)
class Cluster:
    """This process's place in a training cluster (one worker alone when there is no TF_CONFIG)."""

    workers: int = 1
    index: int = 0
    task_type: str = "worker"

    @property
    def is_chief(self) -> bool:
        """Worker 0 (or a task of type chief) registers; the others only train."""
        return self.task_type == "chief" or (self.task_type == "worker" and self.index == 0)


def read_cluster(env: Mapping[str, str] | None = None) -> Cluster:
    """The cluster TF_CONFIG describes; a clear usage error when it is malformed."""
    env = os.environ if env is None else env
    raw = env.get("TF_CONFIG", "").strip()
    if not raw:
        return Cluster()
    try:
        config = json.loads(raw)
        cluster = config["cluster"]
        task = config.get("task") or {"type": "worker", "index": 0}
        workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
        return Cluster(workers=workers, index=int(task["index"]), task_type=str(task["type"]))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"TF_CONFIG is not a valid cluster description ({exc}): {raw[:200]}") from None


def indexed_job_tf_config(cfg: TrainSettings, index: int, hostname: str) -> dict:
    """TF_CONFIG of pod `index` of an Indexed Job whose pods are `<job>-<i>.<service>`."""
    if not cfg.worker_service:
        raise UsageError("train.workers > 1 needs train.worker_service (the headless Service's name)")
    if not 0 <= index < cfg.workers:
        raise UsageError(f"JOB_COMPLETION_INDEX {index} is outside 0..{cfg.workers - 1} (train.workers)")
    suffix = f"-{index}"
    if not hostname.endswith(suffix):
        raise UsageError(
            f"hostname {hostname!r} does not end with -{index}: not a pod of an Indexed Job "
            "(completionMode: Indexed names pods <job>-<index>)"
        )
    job = hostname[: -len(suffix)]
    workers = [f"{job}-{i}.{cfg.worker_service}:{cfg.worker_port}" for i in range(cfg.workers)]
    return {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}


def export_tf_config(cfg: TrainSettings, env: MutableMapping[str, str] | None = None) -> Cluster:
    """Set TF_CONFIG from JOB_COMPLETION_INDEX when this is a pod of a multi-worker Job; the cluster.

    A TF_CONFIG already set wins (tests and other launchers set their own).
    """
    env = os.environ if env is None else env
    if not env.get("TF_CONFIG") and cfg.workers > 1:
        raw_index = env.get("JOB_COMPLETION_INDEX", "")
        index = ascii_int(raw_index, 6)
        if index is None:
            raise UsageError(
                f"train.workers is {cfg.workers} but JOB_COMPLETION_INDEX is {raw_index!r}: "
                "multi-worker training runs as an Indexed Job (k8s/training/distributed/) or with TF_CONFIG"
            )
        config = indexed_job_tf_config(cfg, index, socket.gethostname())
        env["TF_CONFIG"] = json.dumps(config)
    return read_cluster(env)
