"""Trust at the point of use, with real gunicorn on loopback (issue 23).

(a) A direct write of the production pointer naming an unapproved version: `mlops deploy --target
local` refuses it (exit 3, audited), the API keeps serving the verified version, and the refusal is
counted on the running API's /metrics (`mlops_trust_refusals_total`).
(b) The cached model file swapped for another of the same size and mtime, then a worker killed with
`kill -9`: the respawned worker refuses to load it (gunicorn halts), the refusal is audited, and no
/predict answer ever comes from the swapped model.
"""

from __future__ import annotations

import json
import os
import signal
import time
import zipfile
from pathlib import Path

import pytest
import requests
from canary_models import brightness_images, save_brightness_model
from live_server import start_serve, stop_server
from manifests import lineage
from prometheus_client.parser import text_string_to_metric_families
from trust_keys import sign_tests

import registry
from core.processes import free_port
from core.settings import load_settings

pytestmark = pytest.mark.slow
DARK = brightness_images(count=6)[0]  # the real model says covid; the swapped one says pneumonia


def _register(reg: registry.Registry, name: str, inverted: bool = False) -> registry.ModelVersion:
    manifest = save_brightness_model(Path(name), inverted=inverted)
    return reg.register(Path(name), lineage(**manifest), actor="ci")


def _predict(url: str) -> dict:
    response = requests.post(url + "/predict", files={"file": ("dark.png", DARK)}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _refusals(reg: registry.Registry) -> list[dict]:
    return [e for e in reg.audit() if e["action"] == "refuse"]


def test_a_direct_pointer_write_is_refused_at_deploy_and_the_api_stays_verified(
    trust, promote, cli, monkeypatch
):
    monkeypatch.setenv("MLOPS_API_WORKERS", "1")
    reg = registry.open_registry(load_settings())
    good = promote(reg, _register(reg, "v1").ref).version
    bad = _register(reg, "v2", inverted=True).version  # signed by the trainer, never approved
    sign_tests(reg, f"testing:{bad}", trust, passed=False)  # and its model tests failed
    port = free_port()
    first = cli("deploy", "--target", "local", "--port", str(port), "--json")
    try:
        assert first.code == 0, first.err[-2000:]
        url = json.loads(first.out)["url"]
        # The attacker: registry write access, no approver key. Copy the version into production
        # and point production:current at it in one direct write of the pointer.
        for rel in [*reg.resolve(f"testing:{bad}").manifest.files, "model.sig", "manifest.json"]:
            reg.store.copy(f"testing/xray-classifier/{bad}/{rel}", f"production/xray-classifier/{bad}/{rel}")
        pointer = reg.pointer()
        claim = {**pointer["history"][-1], "version": bad}  # "approved by product-owner", in plain JSON
        forged = {
            "current": bad,
            "previous": good,
            "stack": [*pointer["stack"], bad],
            "history": [*pointer["history"], claim],
        }
        reg.store.write(reg._pointer_key, json.dumps(forged).encode())
        assert reg.pointer()["current"] == bad

        refused = cli("deploy", "--target", "local", "--json")
        assert refused.code == 3, (refused.out, refused.err[-2000:])
        assert "the latest required suite run failed" in refused.err
        assert "no approval signed by an approver key" in refused.err
        last = _refusals(reg)[-1]
        assert (last["attempted"], last["ref"], last["check"]) == ("deploy", f"production:{bad}", "tests")
        # The running API still serves the verified version, and says it on /model and /predict.
        assert requests.get(url + "/model", timeout=10).json()["version"] == good
        answer = _predict(url)
        assert (answer["model"]["version"], answer["label"]) == (good, "covid")
        # The refusal is counted where Prometheus scrapes: the API that stayed up.
        metrics = requests.get(url + "/metrics", timeout=10).text
        samples = {
            (s.labels.get("attempted"), s.labels.get("reason")): s.value
            for family in text_string_to_metric_families(metrics)
            if family.name == "mlops_trust_refusals"
            for s in family.samples
            if s.name == "mlops_trust_refusals_total"
        }
        assert samples == {("deploy", "tests"): 1.0}
    finally:
        cli("deploy", "--target", "local", "--stop")


def _workers(master: int) -> list[int]:
    """gunicorn's workers: the master's child processes."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                children.append(int(entry.name))
    return children


def _same_size(path: Path, size: int) -> None:
    """Make a .keras (zip) file SIZE bytes: recompressed smaller, then padded with a zip comment (still a
    loadable model: keras reads any zip)."""
    with zipfile.ZipFile(path) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for info, data in members:
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    missing = size - path.stat().st_size
    assert 0 <= missing < 60_000, missing
    if missing:
        with zipfile.ZipFile(path, "a") as archive:
            archive.comment = b"x" * missing
        while path.stat().st_size != size:  # the comment's own length field may shift it by bytes
            with zipfile.ZipFile(path, "a") as archive:
                archive.comment = archive.comment[: len(archive.comment) - (path.stat().st_size - size)]


def test_a_cache_swap_is_refused_by_the_respawned_worker_and_never_served(trust, promote, tmp_path):
    reg = registry.open_registry(load_settings())
    good = promote(reg, _register(reg, "v1").ref).version
    env = {"MLOPS_TRUST_POLICY": str(trust.policy)}
    server = start_serve("production:current", Path.cwd(), workers=2, threads=2, env=env)
    try:
        assert _predict(server.url)["label"] == "covid"
        cached = reg.fetch("production:current").model_path  # the copy the workers load
        evil = Path("evil")
        save_brightness_model(evil, inverted=True)
        st = cached.stat()
        _same_size(evil / "model.keras", st.st_size)
        cached.write_bytes((evil / "model.keras").read_bytes())
        os.utime(cached, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert (cached.stat().st_size, cached.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)

        os.kill(_workers(server.process.pid)[0], signal.SIGKILL)
        labels, deadline = [], time.monotonic() + 120
        while server.process.poll() is None and time.monotonic() < deadline:
            try:
                response = requests.post(
                    server.url + "/predict", files={"file": ("dark.png", DARK)}, timeout=10
                )
            except requests.RequestException:
                continue
            if response.status_code == 200:
                labels.append(response.json()["label"])
        assert server.process.poll() is not None, "gunicorn kept running with a worker that cannot boot"
        assert server.process.returncode != 0
        assert set(labels) <= {"covid"}, labels  # never an answer from the swapped model
        [refusal] = [e for e in _refusals(reg) if e["attempted"] == "serve"]
        assert "swapped after verification" in refusal["reason"]
        assert refusal["version"] == good
    finally:
        stop_server(server)
