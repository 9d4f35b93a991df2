"""Translate a rendered Kubernetes container spec into the matching `docker run` invocation.

The container tests run the images with exactly what the cluster would run: command, args,
environment (ConfigMaps and test-provided Secrets resolved), user, read-only root filesystem with its
emptyDir mounts, capabilities, privilege escalation and resource limits. Every field is either
translated or refused (an unknown field fails the test), so a manifest change cannot silently escape
the tests.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_QUANTITY = re.compile(r"^(?P<number>\d+(?:\.\d+)?)(?P<suffix>Ki|Mi|Gi|Ti|k|M|G|T|m)?$")
_FACTORS = {
    None: 1,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
}
# Fields of a container that the translation understands; anything else is refused.
_KNOWN_CONTAINER_FIELDS = {
    "name",
    "image",
    "imagePullPolicy",
    "command",
    "args",
    "env",
    "envFrom",
    "ports",
    "resources",
    "securityContext",
    "volumeMounts",
    "startupProbe",
    "readinessProbe",
    "livenessProbe",
    "lifecycle",
}


class Untranslatable(ValueError):
    """A container spec field has no faithful `docker run` equivalent here."""


def quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity ("256Mi", "500m", "2") as a plain number."""
    match = _QUANTITY.match(str(value))
    if not match:
        raise Untranslatable(f"unsupported quantity {value!r}")
    number, suffix = float(match["number"]), match["suffix"]
    return number / 1000 if suffix == "m" else number * _FACTORS[suffix]


@dataclass
class DockerRun:
    """A `docker run` equivalent of one container of a pod spec."""

    flags: list[str]
    image: str
    argv: list[str]
    grace_s: int
    ports: dict[str, int]
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def command(self, name: str) -> list[str]:
        """The whole `docker run -d` command line for a container called NAME."""
        return ["docker", "run", "-d", "--name", name, *self.flags, self.image, *self.argv]

    def probe_path(self, kind: str) -> str:
        """The HTTP path of a probe (startupProbe, readinessProbe, livenessProbe)."""
        return self.probes[kind]["httpGet"]["path"]

    def startup_budget_s(self) -> float:
        """How long Kubernetes would wait for the startup probe before killing the container."""
        probe = self.probes.get("startupProbe") or self.probes["readinessProbe"]
        return probe.get("initialDelaySeconds", 0) + probe.get("periodSeconds", 10) * probe.get(
            "failureThreshold", 3
        )


def container_of(pod_spec: dict[str, Any], name: str) -> dict[str, Any]:
    """The container called NAME of a pod spec."""
    for container in pod_spec["containers"]:
        if container["name"] == name:
            return container
    raise KeyError(f"no container {name!r} in the pod spec")


def _secret_value(item: dict[str, Any], secrets: dict[str, dict[str, str]]) -> str | None:
    """An env var's value from a Secret the test provides, as the kubelet resolves `secretKeyRef`:
    a missing optional Secret or key leaves the variable unset (None); a missing required one stops
    the container from starting (CreateContainerConfigError), so it is refused here."""
    ref = item["valueFrom"]
    if set(ref) != {"secretKeyRef"}:
        raise Untranslatable(
            f"env {item['name']} uses valueFrom {sorted(ref)} (only secretKeyRef is translated)"
        )
    key_ref = ref["secretKeyRef"]
    value = secrets.get(key_ref["name"], {}).get(key_ref["key"])
    if value is None and not key_ref.get("optional", False):
        raise Untranslatable(
            f"env {item['name']} needs key {key_ref['key']!r} of Secret {key_ref['name']!r}, which the test "
            "does not provide (the pod would not start)"
        )
    return value


def _env(
    container: dict[str, Any], config_maps: dict[str, dict[str, str]], secrets: dict[str, dict[str, str]]
) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if not ref:
            raise Untranslatable(f"envFrom source {source} (only configMapRef is translated)")
        env.update(config_maps[ref["name"]])
    for item in container.get("env", []):
        value = item["value"] if "value" in item else _secret_value(item, secrets)
        if value is not None:
            env[item["name"]] = value
    return env


def _security_flags(pod_spec: dict[str, Any], container: dict[str, Any]) -> list[str]:
    pod_ctx = pod_spec.get("securityContext", {})
    ctx = {**pod_ctx, **container.get("securityContext", {})}
    flags: list[str] = []
    uid, gid = ctx.get("runAsUser"), ctx.get("runAsGroup")
    if ctx.get("runAsNonRoot") and not uid:
        raise Untranslatable("runAsNonRoot without a numeric runAsUser cannot be checked with docker")
    if uid is not None:
        flags += ["--user", f"{uid}:{gid if gid is not None else uid}"]
    if "fsGroup" in pod_ctx:
        flags += ["--group-add", str(pod_ctx["fsGroup"])]
    if ctx.get("privileged"):
        flags.append("--privileged")
    if ctx.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    if ctx.get("readOnlyRootFilesystem"):
        flags.append("--read-only")
    caps = ctx.get("capabilities", {})
    flags += [f"--cap-drop={c}" for c in caps.get("drop", [])]
    flags += [f"--cap-add={c}" for c in caps.get("add", [])]
    seccomp = (ctx.get("seccompProfile") or {}).get("type", "RuntimeDefault")
    if seccomp == "Unconfined":
        flags += ["--security-opt", "seccomp=unconfined"]
    elif seccomp != "RuntimeDefault":  # RuntimeDefault is Docker's default profile
        raise Untranslatable(f"seccompProfile {seccomp}")
    return flags


def _secret_volume(
    volume: dict[str, Any], secrets: dict[str, dict[str, str]], root: Path | None
) -> Path | None:
    """A Secret volume as the kubelet makes it: one file per key, mode defaultMode, in a host folder.

    None when the Secret is optional and the test does not provide it (the kubelet mounts nothing);
    a required Secret the test does not provide is refused (the pod would not start)."""
    ref = volume["secret"]
    unknown = set(ref) - {"secretName", "defaultMode", "optional"}
    if unknown:
        raise Untranslatable(f"secret volume {volume['name']}: fields not translated: {sorted(unknown)}")
    data = secrets.get(ref["secretName"])
    if data is None:
        if ref.get("optional", False):
            return None
        raise Untranslatable(
            f"volume {volume['name']} needs Secret {ref['secretName']!r}, which the test does not provide "
            "(the pod would not start)"
        )
    if root is None:
        raise Untranslatable(f"volume {volume['name']}: give volume_root to materialise Secret volumes")
    folder = root / volume["name"]
    folder.mkdir(parents=True, exist_ok=False)
    for key, value in data.items():
        if "/" in key or key in ("", ".", ".."):
            raise Untranslatable(f"Secret {ref['secretName']!r} key {key!r} is not a file name")
        path = folder / key
        path.write_text(value)
        path.chmod(ref.get("defaultMode", 0o644))
    folder.chmod(0o755)
    return folder


def _volume_flags(
    pod_spec: dict[str, Any],
    container: dict[str, Any],
    host_mounts: dict[str, str],
    secrets: dict[str, dict[str, str]],
    volume_root: Path | None,
) -> list[str]:
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    flags: list[str] = []
    for mount in container.get("volumeMounts", []):
        path = mount["mountPath"]
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            # A fresh, writable, size-limited folder, like an emptyDir (mode 0777 as the kubelet makes it).
            spec = f"type=tmpfs,destination={path},tmpfs-mode=1777"
            limit = (volume["emptyDir"] or {}).get("sizeLimit")
            if limit:
                spec += f",tmpfs-size={int(quantity(limit))}"
            flags += ["--mount", spec]
        elif path in host_mounts:  # a Secret or other volume the test provides from a host folder
            flags += ["-v", f"{host_mounts[path]}:{path}" + (":ro" if mount.get("readOnly") else "")]
        elif "secret" in volume:  # a Secret the test provides by content, written as the kubelet does
            folder = _secret_volume(volume, secrets, volume_root)
            if folder is not None:
                flags += ["-v", f"{folder}:{path}" + (":ro" if mount.get("readOnly") else "")]
        else:
            raise Untranslatable(f"volume {mount['name']} at {path} ({sorted(volume)})")
    return flags


def _resource_flags(container: dict[str, Any], notes: list[str]) -> list[str]:
    limits = (container.get("resources") or {}).get("limits", {})
    flags: list[str] = []
    for key, value in limits.items():
        if key == "cpu":
            cpus = quantity(value)
            host = os.cpu_count() or 1
            if cpus > host:
                notes.append(f"cpu limit {value} clamped to this machine's {host} cores")
                cpus = host
            flags += ["--cpus", f"{cpus:g}"]
        elif key == "memory":
            flags += ["--memory", str(int(quantity(value)))]
        elif key == "nvidia.com/gpu":
            notes.append(f"{key}: {value} not available on this machine (CPU image used)")
        else:
            raise Untranslatable(f"resource limit {key}")
    return flags


def docker_run_for(
    pod_spec: dict[str, Any],
    container_name: str,
    config_maps: dict[str, dict[str, str]],
    *,
    image: str,
    env_overrides: dict[str, str] | None = None,
    host_mounts: dict[str, str] | None = None,
    secrets: dict[str, dict[str, str]] | None = None,
    published: dict[int, int] | None = None,
    volume_root: Path | None = None,
) -> DockerRun:
    """The `docker run` equivalent of one container; overrides swap only what the test must swap.

    SECRETS: {secret name: {key: value}}, the Secrets the test creates, for `secretKeyRef` env vars
    and for Secret volumes (written under VOLUME_ROOT, one file per key, as the kubelet mounts them).
    """
    container = container_of(pod_spec, container_name)
    unknown = set(container) - _KNOWN_CONTAINER_FIELDS
    if unknown:
        raise Untranslatable(f"container fields not translated: {sorted(unknown)}")
    notes: list[str] = []
    flags = _security_flags(pod_spec, container)
    flags += _volume_flags(pod_spec, container, host_mounts or {}, secrets or {}, volume_root)
    flags += _resource_flags(container, notes)
    env = {**_env(container, config_maps, secrets or {}), **(env_overrides or {})}
    for key, value in env.items():
        flags += ["-e", f"{key}={value}"]
    ports = {p.get("name", str(p["containerPort"])): p["containerPort"] for p in container.get("ports", [])}
    for container_port, host_port in (published or {}).items():
        flags += ["-p", f"127.0.0.1:{host_port}:{container_port}"]
    command = container.get("command")
    argv = list(container.get("args", []))
    if command:
        flags += ["--entrypoint", command[0]]
        argv = [*command[1:], *argv]
    if (container.get("lifecycle") or {}).get("preStop"):
        notes.append("preStop hook not run (docker stop sends SIGTERM at once)")
    probes = {k: container[k] for k in ("startupProbe", "readinessProbe", "livenessProbe") if k in container}
    return DockerRun(
        flags=flags,
        image=image,
        argv=argv,
        grace_s=int(pod_spec.get("terminationGracePeriodSeconds", 30)),
        ports=ports,
        probes=probes,
        notes=notes,
    )
