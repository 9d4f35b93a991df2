"""Stand-in for `kubectl` where no cluster exists: records every call, renders with the real kubectl.

KUBECTL_STANDIN_LOG      JSON lines file: one {"argv", "stdin"} per call
KUBECTL_STANDIN_REAL     the real kubectl, run for `kustomize`
KUBECTL_STANDIN_FAIL     comma list of steps that fail once each: apply, status, undo
KUBECTL_STANDIN_UNCHANGED  when set, `apply` reports the Deployment unchanged
KUBECTL_STANDIN_FORWARD  host:port that `port-forward ... LOCAL:80` forwards LOCAL to (TCP)
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
from pathlib import Path


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
    print(f"Forwarding from 127.0.0.1:{local_port} -> 80", flush=True)
    while True:
        client, _ = server.accept()
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


def main(argv: list[str]) -> int:
    stdin = sys.stdin.read() if argv[:3] == ["apply", "-f", "-"] else None
    with open(os.environ["KUBECTL_STANDIN_LOG"], "a") as log:
        log.write(json.dumps({"argv": argv, "stdin": stdin}) + "\n")
    if argv[:1] == ["kustomize"]:
        os.execv(os.environ["KUBECTL_STANDIN_REAL"], ["kubectl", *argv])
    if argv[:1] == ["apply"]:
        if fails_once("apply"):
            print("error: the server rejected the manifests", file=sys.stderr)
            return 1
        state = "unchanged" if os.environ.get("KUBECTL_STANDIN_UNCHANGED") else "configured"
        print(f"configmap/xray-api-config-abc created\ndeployment.apps/xray-api {state}")
        return 0
    if argv[:2] == ["rollout", "status"]:
        if fails_once("status"):
            print('error: deployment "xray-api" exceeded its progress deadline', file=sys.stderr)
            return 1
        print('deployment "xray-api" successfully rolled out')
        return 0
    if argv[:2] == ["rollout", "undo"]:
        if fails_once("undo"):
            print("error: no rollout history found", file=sys.stderr)
            return 1
        print("deployment.apps/xray-api rolled back")
        return 0
    if argv[:1] == ["port-forward"]:
        local_port = int(next(a for a in argv if a.endswith(":80")).split(":")[0])
        port_forward(local_port, os.environ["KUBECTL_STANDIN_FORWARD"])
    print(f"kubectl stand-in: unsupported call {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
