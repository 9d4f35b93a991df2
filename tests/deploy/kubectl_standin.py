"""Stand-in for `kubectl` where no cluster exists: a tiny simulated cluster answering as kubectl does.

It keeps the applied objects in a state file, so `apply` reports each object created, configured or
unchanged from what it really holds; a Deployment whose pod template changes gets a new revision,
`rollout undo` brings the previous template back (or fails, as kubectl does, when there is none), and
`get deployment NAME -o json` shows the result. Output lines follow kubectl's documented formats:

    deployment.apps/xray-api configured                       apply (kind.group/name state)
    Waiting for deployment "xray-api" rollout to finish: 0 of 2 updated replicas are available...
    deployment "xray-api" successfully rolled out             rollout status
    deployment.apps/xray-api rolled back                      rollout undo
    error: no rollout history found for deployment "xray-api" rollout undo with one revision
    Error from server (NotFound): deployments.apps "xray-api" not found
    deployment.apps "xray-api-canary" deleted                 delete deployment NAME
    pod/xray-api-5d8c7b9f4-0                                  get pods -l SELECTOR -o name

KUBECTL_STANDIN_LOG      JSON lines file: one {"argv", "stdin"} per call; the cluster state lives beside it
KUBECTL_STANDIN_REAL     the real kubectl, run for `kustomize`
KUBECTL_STANDIN_FAIL     comma list of steps that fail once each: apply, status (the cluster's own failures)
KUBECTL_STANDIN_FORWARD  host:port that `port-forward service/... LOCAL:80` forwards LOCAL to (TCP)
KUBECTL_STANDIN_FORWARDS JSON {deployment name: host:port}: where `port-forward deployment/NAME` or
                         `pod/POD` (a pod of that Deployment) forwards, so each side can be its own server
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import yaml

REVISION = "deployment.kubernetes.io/revision"


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def port_forward(local_port: int, target: str) -> None:
    """Forward 127.0.0.1:local_port to target until killed, like kubectl port-forward does."""
    host, _, port = target.rpartition(":")
    server = socket.create_server(("127.0.0.1", local_port))
    print(f"Forwarding from 127.0.0.1:{local_port} -> 8080", flush=True)
    while True:
        client, _ = server.accept()
        print(f"Handling connection for {local_port}", flush=True)
        upstream = socket.create_connection((host, int(port)))
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def fails_once(step: str) -> bool:
    """True the first time a step listed in KUBECTL_STANDIN_FAIL runs."""
    if step not in os.environ.get("KUBECTL_STANDIN_FAIL", "").split(","):
        return False
    marker = Path(os.environ["KUBECTL_STANDIN_LOG"] + f".failed-{step}")
    if marker.exists():
        return False
    marker.touch()
    return True


# -- the simulated cluster -------------------------------------------------------------------------


def _state_path() -> Path:
    return Path(os.environ["KUBECTL_STANDIN_LOG"] + ".cluster.json")


def load_cluster() -> dict[str, Any]:
    """{"objects": {key: object}, "history": {deployment key: [[revision, pod template], ...]}}."""
    path = _state_path()
    return json.loads(path.read_text()) if path.exists() else {"objects": {}, "history": {}}


def _save(cluster: dict[str, Any]) -> None:
    _state_path().write_text(json.dumps(cluster))


def _key(kind: str, namespace: str | None, name: str) -> str:
    return f"{kind}/{namespace or ''}/{name}"


def resource(doc: dict[str, Any]) -> str:
    """kubectl's name for an object's type: lower-case kind, then the API group unless it is core."""
    group = doc["apiVersion"].rpartition("/")[0]
    return doc["kind"].lower() + (f".{group}" if group else "")


def _deployment_key(argv: list[str]) -> tuple[str, str]:
    """The Deployment a `rollout ...` or `get ...` call names, and its name."""
    target = next(a for a in argv[1:] if a.startswith("deployment"))
    # `rollout status deployment/NAME` or `get deployment NAME`
    name = target.split("/", 1)[1] if "/" in target else argv[argv.index(target) + 1]
    namespace = argv[argv.index("-n") + 1] if "-n" in argv else "default"
    return _key("Deployment", namespace, name), name


def apply(manifests: str) -> tuple[list[str], dict[str, Any]]:
    """Apply the documents; kubectl's line for each, and the new cluster state."""
    cluster = load_cluster()
    lines = []
    for doc in yaml.safe_load_all(manifests):
        if not doc:
            continue
        meta = doc["metadata"]
        key = _key(doc["kind"], meta.get("namespace"), meta["name"])
        before = cluster["objects"].get(key)
        state = "created" if before is None else "unchanged" if as_applied(before) == doc else "configured"
        stored = copy.deepcopy(doc)
        if doc["kind"] == "Deployment":
            _roll(cluster, key, before, stored)
        cluster["objects"][key] = stored
        lines.append(f"{resource(doc)}/{meta['name']} {state}")
    return lines, cluster


def as_applied(obj: dict[str, Any]) -> dict[str, Any]:
    """An object as a user applied it, without what the cluster adds (status, generation, revision)."""
    doc = copy.deepcopy(obj)
    doc.pop("status", None)
    meta = doc["metadata"]
    meta.pop("generation", None)
    annotations = meta.get("annotations") or {}
    annotations.pop(REVISION, None)
    if "annotations" in meta and not annotations:
        meta.pop("annotations")
    return doc


def _set_revision(cluster: dict[str, Any], key: str, deployment: dict[str, Any]) -> None:
    """Make the Deployment's pod template the newest revision (an old equal one is renumbered)."""
    history = cluster["history"].setdefault(key, [])
    template = deployment["spec"]["template"]
    number = max((rev for rev, _ in history), default=0) + 1
    history[:] = [(rev, old) for rev, old in history if old != template] + [(number, copy.deepcopy(template))]
    deployment["metadata"].setdefault("annotations", {})[REVISION] = str(number)


def _roll(cluster: dict[str, Any], key: str, before: dict | None, doc: dict[str, Any]) -> None:
    """A Deployment: a changed spec bumps its generation; a changed pod template makes a new revision."""
    generation = before["metadata"]["generation"] if before else 0
    doc["metadata"]["generation"] = generation + (before is None or before["spec"] != doc["spec"])
    if before is not None and before["spec"]["template"] == doc["spec"]["template"]:
        doc["metadata"].setdefault("annotations", {})[REVISION] = before["metadata"]["annotations"][REVISION]
    else:
        _set_revision(cluster, key, doc)


def rollout_undo(key: str, name: str) -> tuple[int, str]:
    """Bring the previous revision's pod template back (kubectl rollout undo)."""
    cluster = load_cluster()
    deployment = cluster["objects"].get(key)
    if deployment is None:
        return 1, f'Error from server (NotFound): deployments.apps "{name}" not found'
    history = cluster["history"].get(key, [])
    if len(history) < 2:
        return 1, f'error: no rollout history found for deployment "{name}"'
    deployment["spec"]["template"] = copy.deepcopy(history[-2][1])
    deployment["metadata"]["generation"] += 1
    _set_revision(cluster, key, deployment)
    _save(cluster)
    return 0, f"deployment.apps/{name} rolled back"


def _deployment(key: str, name: str) -> dict[str, Any] | None:
    """The Deployment as the cluster holds it; None (with kubectl's NotFound line) when it is not there."""
    deployment = load_cluster()["objects"].get(key)
    if deployment is None:
        print(f'Error from server (NotFound): deployments.apps "{name}" not found', file=sys.stderr)
    return deployment


def rollout_status(key: str, name: str) -> int:
    deployment = _deployment(key, name)
    if deployment is None:
        return 1
    waiting = f"0 of {deployment['spec'].get('replicas', 1)} updated replicas are available..."
    print(f'Waiting for deployment "{name}" rollout to finish: {waiting}')
    if fails_once("status"):
        print(f'error: deployment "{name}" exceeded its progress deadline', file=sys.stderr)
        return 1
    print(f'deployment "{name}" successfully rolled out')
    return 0


def pods(namespace: str, selector: str) -> list[str]:
    """The pods the cluster's Deployments in NAMESPACE run whose labels match SELECTOR (k=v, k!=v)."""
    wanted = [term.partition("!=") if "!=" in term else term.partition("=") for term in selector.split(",")]
    found = []
    for key, deployment in sorted(load_cluster()["objects"].items()):
        kind, ns, name = key.split("/")
        if kind != "Deployment" or ns != namespace:
            continue
        labels = deployment["spec"]["template"]["metadata"].get("labels", {})
        if all((labels.get(k) == v) == (op == "=") for k, op, v in wanted):
            revision = deployment["metadata"]["annotations"][REVISION]
            found += [f"{name}-{revision}x{i}" for i in range(deployment["spec"].get("replicas", 1))]
    return found


def delete_deployment(key: str, name: str) -> int:
    cluster = load_cluster()
    if cluster["objects"].pop(key, None) is None:
        print(f'Error from server (NotFound): deployments.apps "{name}" not found', file=sys.stderr)
        return 1
    cluster["history"].pop(key, None)
    _save(cluster)
    print(f'deployment.apps "{name}" deleted')
    return 0


def forward_target(argv: list[str]) -> str:
    """Where a port-forward goes: a Deployment's (or its pod's) server, else KUBECTL_STANDIN_FORWARD."""
    target = next(a for a in argv[1:] if "/" in a)
    kind, _, name = target.partition("/")
    if kind in ("deployment", "pod"):
        forwards = json.loads(os.environ.get("KUBECTL_STANDIN_FORWARDS", "{}"))
        # pods are named DEPLOYMENT-REVISIONxI here, like kubectl's DEPLOYMENT-HASH-SUFFIX
        deployment = name.rsplit("-", 1)[0] if kind == "pod" else name
        return forwards[deployment]
    return os.environ["KUBECTL_STANDIN_FORWARD"]


def get_json(key: str, name: str) -> int:
    deployment = _deployment(key, name)
    if deployment is None:
        return 1
    replicas, generation = deployment["spec"].get("replicas", 1), deployment["metadata"]["generation"]
    status = {"observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas}
    print(json.dumps({**deployment, "status": status}, indent=4))
    return 0


def main(argv: list[str]) -> int:
    stdin = sys.stdin.read() if argv[:3] == ["apply", "-f", "-"] else None
    with open(os.environ["KUBECTL_STANDIN_LOG"], "a") as log:
        log.write(json.dumps({"argv": argv, "stdin": stdin}) + "\n")
    if argv[:1] == ["kustomize"]:
        os.execv(os.environ["KUBECTL_STANDIN_REAL"], ["kubectl", *argv])
    if argv[:3] == ["apply", "-f", "-"]:
        if fails_once("apply"):
            print(
                'Error from server (Forbidden): error when applying patch: deployments.apps "xray-api" is '
                'forbidden: User "jenkins" cannot patch resource "deployments" in API group "apps"',
                file=sys.stderr,
            )
            return 1
        lines, cluster = apply(stdin or "")
        _save(cluster)
        print("\n".join(lines))
        return 0
    if argv[:2] == ["rollout", "status"]:
        return rollout_status(*_deployment_key(argv[1:]))
    if argv[:2] == ["rollout", "undo"]:
        code, message = rollout_undo(*_deployment_key(argv[1:]))
        print(message, file=sys.stderr if code else sys.stdout)
        return code
    if argv[:1] == ["get"] and argv[-2:] == ["-o", "json"]:
        return get_json(*_deployment_key(argv))
    if argv[:2] == ["get", "pods"] and argv[-2:] == ["-o", "name"]:
        namespace = argv[argv.index("-n") + 1] if "-n" in argv else "default"
        for pod in pods(namespace, argv[argv.index("-l") + 1]):
            print(f"pod/{pod}")
        return 0
    if argv[:2] == ["delete", "deployment"]:
        return delete_deployment(*_deployment_key(argv))
    if argv[:1] == ["port-forward"]:
        local_port = int(next(a for a in argv if a.endswith((":80", ":8080"))).split(":")[0])
        port_forward(local_port, forward_target(argv))
    print(f"kubectl stand-in: unsupported call {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
