"""TF_CONFIG from an Indexed Job's completion index (training/tf_config.py), before TensorFlow starts."""

from __future__ import annotations

import dataclasses
import json

import pytest

from core.errors import UsageError
from core.settings import TrainSettings
from training.tf_config import Cluster, export_tf_config, indexed_job_tf_config, read_cluster

JOB = dataclasses.replace(TrainSettings(), workers=3, worker_service="xray-train-workers", worker_port=2222)


def test_pod_i_of_an_indexed_job_gets_every_peer_by_its_stable_dns_name():
    config = indexed_job_tf_config(JOB, 2, "xray-train-dist-2")
    assert config == {
        "cluster": {
            "worker": [f"xray-train-dist-{i}.xray-train-workers:2222" for i in range(3)],
        },
        "task": {"type": "worker", "index": 2},
    }


def test_export_sets_tf_config_from_job_completion_index(monkeypatch):
    monkeypatch.setattr("socket.gethostname", lambda: "xray-train-dist-0")
    env = {"JOB_COMPLETION_INDEX": "0"}
    cluster = export_tf_config(JOB, env)
    assert cluster == Cluster(workers=3, index=0) and cluster.is_chief
    assert json.loads(env["TF_CONFIG"])["task"] == {"type": "worker", "index": 0}
    assert not read_cluster(
        {"TF_CONFIG": json.dumps({"cluster": {"worker": ["a", "b"]}, "task": {"type": "worker", "index": 1}})}
    ).is_chief


def test_a_given_tf_config_wins_and_one_worker_needs_none():
    env = {"TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}'}
    assert export_tf_config(JOB, env) == Cluster(workers=2, index=1)
    assert export_tf_config(TrainSettings(), {}) == Cluster()


@pytest.mark.parametrize(
    ("env", "hostname", "message"),
    [
        ({}, "xray-train-dist-0", "JOB_COMPLETION_INDEX is ''"),
        ({"JOB_COMPLETION_INDEX": "3"}, "xray-train-dist-3", "outside 0..2"),
        ({"JOB_COMPLETION_INDEX": "1"}, "somewhere-else", "not a pod of an Indexed Job"),
        ({"TF_CONFIG": "{nope"}, "x-0", "TF_CONFIG is not a valid cluster description"),
    ],
)
def test_bad_cluster_facts_are_usage_errors(monkeypatch, env, hostname, message):
    monkeypatch.setattr("socket.gethostname", lambda: hostname)
    with pytest.raises(UsageError, match=message):
        export_tf_config(JOB, dict(env))
