"""Deploy test fixtures: a free loopback port, the `mlops serve` stand-in, and cleanup of every process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.processes import alive, free_port, terminate
from core.settings import Settings, load_settings
from deploy import local
from deploy.k8s import kubectl_path

STANDIN = Path(__file__).with_name("standin_serve.py")
KUBECTL_STANDIN = Path(__file__).with_name("kubectl_standin.py")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def local_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings that serve the stand-in on a free port; stops whatever the test started."""
    monkeypatch.setenv("MLOPS_DEPLOY_SERVE_COMMAND", f"{sys.executable} {STANDIN} serve")
    monkeypatch.setenv("MLOPS_API_PORT", str(free_port()))
    monkeypatch.setenv("MLOPS_API_WORKERS", "2")
    monkeypatch.setenv("MLOPS_DEPLOY_READY_TIMEOUT_S", "60")
    monkeypatch.setenv("STANDIN_LOAD_S", "1.0")
    settings = load_settings()
    yield settings
    local.stop_local(settings)


def _started_here(home: str) -> list[int]:
    """Processes whose environment names this test's MLOPS_HOME: the ones this test started."""
    wanted = {f"MLOPS_HOME={home}".encode(), f"MLOPS_HOME={Path(home).resolve()}".encode()}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted & set(environ):
            found.append(int(entry.name))
    return found


@pytest.fixture(autouse=True)
def _no_process_left(_isolated_env: None) -> Iterator[None]:
    """Whatever a test does, no server or socket holder it started outlives it."""
    yield
    leftovers = {
        pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        for pid in _started_here(os.environ["MLOPS_HOME"])
        if alive(pid)
    }
    for pid in leftovers:
        terminate(pid, 5, group=True)
    assert not leftovers, f"processes left running (now stopped): {leftovers}"


@dataclass
class KubectlCalls:
    """The calls the kubectl stand-in recorded, and a way to act on its simulated cluster."""

    log: Path
    shim: Path

    def run(self, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `kubectl ARGV` against the stand-in, as a person at a terminal would."""
        return subprocess.run(
            [str(self.shim), *argv], input=stdin, capture_output=True, text=True, timeout=60
        )

    def seed(self, manifests: str) -> None:
        """Make the cluster already run these manifests (then forget the calls that did it)."""
        done = self.run("apply", "-f", "-", stdin=manifests)
        assert done.returncode == 0, done.stderr
        self.log.unlink()

    def deployment(self, namespace: str, name: str = "xray-api") -> dict:
        """`kubectl get deployment NAME -n NAMESPACE -o json`."""
        done = self.run("get", "deployment", name, "-n", namespace, "-o", "json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def all(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def verbs(self) -> list[str]:
        """Each cluster call as 'apply', 'rollout status', 'rollout undo', 'port-forward' (not kustomize)."""
        out = []
        for call in self.all():
            argv = call["argv"]
            if argv[0] == "kustomize":
                continue
            out.append(" ".join(argv[:2]) if argv[0] == "rollout" else argv[0])
        return out


@pytest.fixture
def kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> KubectlCalls:
    """A `kubectl` on the settings that records calls and renders with the real kubectl."""
    real = shutil.which(kubectl_path(Settings()))
    assert real, "kubectl must be installed (scripts/bootstrap.sh installs it)"
    shim = tmp_path / "bin" / "kubectl"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{KUBECTL_STANDIN}" "$@"\n')
    shim.chmod(0o755)
    log = tmp_path / "kubectl-calls.jsonl"
    monkeypatch.setenv("MLOPS_DEPLOY_KUBECTL", str(shim))
    monkeypatch.setenv("MLOPS_DEPLOY_K8S_DIR", str(REPO / "k8s"))
    monkeypatch.setenv("KUBECTL_STANDIN_LOG", str(log))
    monkeypatch.setenv("KUBECTL_STANDIN_REAL", real)
    return KubectlCalls(log, shim)
