"""The serving image runs the Deployment's container spec of every overlay and serves real traffic.

The spec comes from `kubectl kustomize k8s/overlays/<name>`: command, args, ConfigMap environment,
user, read-only root filesystem with its emptyDir mounts, dropped capabilities, no privilege
escalation, resource limits. Only the registry URI is swapped for a mounted folder that the training
image filled (trained, model-tested and promoted in containers).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from containers import (
    API_IMAGE,
    PUBLIC_KEY_MOUNT,
    TRUST_MOUNT,
    TRUST_SECRET,
    Container,
    config_maps,
    container_state,
    docker,
    http,
    image_suite_digest,
    one,
    render,
    signing_keys,
    trust_secret,
    trust_set,
)
from podspec import DockerRun, docker_run_for

from core.processes import free_port
from registry.monitoring_log import decode_batch

pytestmark = [pytest.mark.docker, pytest.mark.slow]
OVERLAYS = ["staging", "production"]
FEEDBACK_TOKEN = "feedback-" + uuid.uuid4().hex


def multipart(field: str, filename: str, payload: bytes, content_type: str) -> tuple[bytes, str]:
    """A multipart/form-data body with one file field, as `curl -F` sends it."""
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def logged_request_ids(registry: Path, kind: str = "predictions") -> set[str]:
    """Request ids of every record of KIND (predictions, feedback) in the registry's monitoring/ area."""
    ids = set()
    for batch in registry.glob(f"monitoring/*/{kind}/*/*.parquet"):
        ids |= {record.get("id") for record in decode_batch(batch.read_bytes(), batch.name, kind)}
    return ids


def deployment_run(
    overlay: str,
    registry: Path,
    keys: Path,
    port: int,
    volumes: Path,
    trust_keys: Path | None = None,
    grpc_port: int | None = None,
) -> DockerRun:
    """The overlay's API container as `docker run` flags: the registry and signing Secret from host
    folders, the mlops-trust-policy Secret written under VOLUMES as the kubelet mounts it (read-only,
    one file per key). TRUST_KEYS: whose trust policy the Secret holds (default: KEYS'). GRPC_PORT:
    the host port for the container's gRPC port 8081 (unpublished when None)."""
    documents = render(f"overlays/{overlay}")
    pod = one(documents, "Deployment")["spec"]["template"]["spec"]
    run = docker_run_for(
        pod,
        "api",
        config_maps(documents),
        image=API_IMAGE,
        env_overrides={"MLOPS_REGISTRY": "file:///registry"},
        host_mounts={PUBLIC_KEY_MOUNT: str(keys)},
        secrets={
            "xray-api-feedback": {"token": FEEDBACK_TOKEN},  # the Secret the overlays' component reads
            TRUST_SECRET: trust_secret(trust_keys or keys),
        },
        published={8080: port} if grpc_port is None else {8080: port, 8081: grpc_port},
        volume_root=volumes,
    )
    # Read-write: the API appends its prediction log to the store's monitoring/ area (one object a batch).
    run.flags += ["-v", f"{registry}:/registry"]
    return run


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployment_spec_serves_probes_predictions_and_stops_on_sigterm(
    overlay, images, production_registry, keys, demo_data, container_name, tmp_path
):
    port, grpc_port = free_port(), free_port()
    run = deployment_run(overlay, production_registry, keys, port, tmp_path / "volumes", grpc_port=grpc_port)
    assert any(flag.endswith(f":{TRUST_MOUNT}:ro") for flag in run.flags)  # the policy, mounted read-only
    base = f"http://127.0.0.1:{port}"
    with Container(run, container_name) as box:
        box.wait_http(base + run.probe_path("startupProbe"), run.startup_budget_s())
        for probe in ("readinessProbe", "livenessProbe"):
            status, body = http(base + run.probe_path(probe))
            assert status == 200, (probe, body)

        image_file = next((demo_data / "covid").glob("*.png"))
        body, content_type = multipart("file", image_file.name, image_file.read_bytes(), "image/png")
        status, raw = http(base + "/predict", body, {"Content-Type": content_type})
        assert status == 200, raw
        answer = json.loads(raw)
        assert answer["model"]["version"] == 1
        assert set(answer["probabilities"]) == {"covid", "normal", "pneumonia"}
        assert abs(sum(answer["probabilities"].values()) - 1) < 1e-4

        name = answer["model"]["name"]
        infer = {
            "inputs": [
                {
                    "name": "images",
                    "shape": [1],
                    "datatype": "BYTES",
                    "data": [base64.b64encode(image_file.read_bytes()).decode()],
                }
            ]
        }
        status, raw = http(
            f"{base}/v2/models/{name}/infer", json.dumps(infer).encode(), {"Content-Type": "application/json"}
        )
        assert status == 200, raw
        outputs = json.loads(raw)["outputs"]
        assert outputs and outputs[0]["shape"][0] == 1

        # The same model over OIP v2 gRPC on the Deployment's `grpc` port (tritonclient.grpc, unchanged).
        client = triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        assert client.is_server_ready() and client.is_model_ready(name)
        tensor = triton_grpc.InferInput("images", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([image_file.read_bytes()], dtype=object))
        by_grpc = client.infer(name, [tensor]).as_numpy("probabilities")
        assert by_grpc.shape == (1, 3) and abs(float(by_grpc.sum()) - 1) < 1e-4
        client.close()

        # Ground truth for that prediction: only with the token from the overlay's Secret.
        truth = json.dumps({"request_id": answer["request_id"], "label": "covid"}).encode()
        status, raw = http(base + "/feedback", truth, {"Content-Type": "application/json"})
        assert status == 401, raw
        bearer = {"Content-Type": "application/json", "Authorization": f"Bearer {FEEDBACK_TOKEN}"}
        status, raw = http(base + "/feedback", truth, bearer)
        assert status == 202, raw

        # The kubelet sends SIGTERM, then SIGKILL after terminationGracePeriodSeconds.
        started = time.monotonic()
        docker("kill", "--signal", "TERM", container_name)
        while container_state(container_name)["Running"]:
            assert time.monotonic() - started < run.grace_s, f"still running {run.grace_s} s after SIGTERM"
            time.sleep(0.2)
        state = container_state(container_name)
        logs = box.logs()
        assert state["ExitCode"] == 0, logs[-3000:]
        assert "Traceback" not in logs, logs[-3000:]
    # The graceful stop flushed this prediction's record and its feedback into the store, as the pod's uid.
    assert answer["request_id"] in logged_request_ids(production_registry), "prediction not in the log"
    assert answer["request_id"] in logged_request_ids(production_registry, "feedback"), "feedback not stored"


def test_serving_image_holds_no_training_code_and_runs_as_non_root(images):
    config = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", API_IMAGE).stdout)
    assert config["User"] == "10001:10001"
    probe = (
        "import importlib.util as u; print([m for m in ('training', 'retraining', 'unit_testing', "
        "'deploy', 'mlops', 'ui', 'monitoring') if u.find_spec(m)])"
    )
    done = docker("run", "--rm", "--entrypoint", "python", API_IMAGE, "-c", probe)
    assert done.stdout.strip() == "[]", done.stdout
    done = docker("run", "--rm", "--entrypoint", "python", API_IMAGE, "-c", "import training", check=False)
    assert done.returncode != 0 and "No module named 'training'" in done.stderr
    whoami = docker("run", "--rm", "--entrypoint", "id", API_IMAGE, "-u")
    assert whoami.stdout.strip() == "10001"
    # The image's entry point is the serving one; the top floor's `mlops` is not there to fail.
    helped = docker("run", "--rm", API_IMAGE, "--help")
    assert helped.stdout.startswith("usage: mlops-serve") and "--model REF" in helped.stdout
    done = docker("run", "--rm", "--entrypoint", "sh", API_IMAGE, "-c", "command -v mlops", check=False)
    assert done.returncode != 0 and done.stdout == ""


def test_serving_image_exits_with_one_clear_line_when_the_model_is_missing(images, tmp_path: Path):
    empty = tmp_path / "registry"
    empty.mkdir()
    done = docker(
        "run", "--rm", "--read-only", "--tmpfs", "/tmp", "-v", f"{empty}:/registry:ro",
        "-e", "MLOPS_REGISTRY=file:///registry", API_IMAGE, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "error" in done.stderr


def test_the_deployment_spec_refuses_a_version_its_trust_policy_does_not_trust(
    images, production_registry, keys, tmp_path, container_name
):
    """A trust policy whose trainer key is another one (e.g. the real one revoked): the API never serves."""
    foreign = signing_keys(tmp_path / "foreign")
    trust_set(foreign, image_suite_digest(), trainer_public=foreign / "signing-key.pub")
    run = deployment_run("production", production_registry, keys, free_port(), tmp_path / "v", foreign)
    with Container(run, container_name) as box:
        deadline = time.monotonic() + 120
        while container_state(container_name)["Running"] and time.monotonic() < deadline:
            time.sleep(0.5)
        state, logs = container_state(container_name), box.logs()
    assert not state["Running"] and state["ExitCode"] != 0, logs[-2000:]
    assert "signature" in logs.lower() and "Traceback" not in logs, logs[-2000:]
