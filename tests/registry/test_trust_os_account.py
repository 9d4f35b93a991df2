"""A non-approver OS account with write access to a shared local registry cannot get its version served.

The account (made with useradd) runs the real CLI through runuser, forging every identity variable,
writing the registry as it likes; the approver's key (mode 0600, root's) is out of its reach.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from manifests import lineage
from trust_keys import make_trust

from core.errors import MlopsError
from core.settings import load_settings
from registry import open_registry
from registry.chain import attest

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not (shutil.which("useradd") and shutil.which("runuser")),
    reason="needs root with useradd and runuser to create a second OS account",
)


@pytest.fixture
def mallory():
    name = f"mal{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--no-create-home", name], check=True)
    yield name
    subprocess.run(["userdel", name], check=False)


@pytest.fixture
def shared():
    """A folder other accounts can reach (pytest's own tmp folders are root's only)."""
    folder = Path(tempfile.mkdtemp(prefix="mlops-shared-"))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_non_approver_account_cannot_get_its_version_served(shared, monkeypatch, mallory):
    tmp_path = shared
    registry = tmp_path / "registry"
    monkeypatch.setenv("MLOPS_REGISTRY", f"file://{registry}")
    trust = make_trust(tmp_path / "trust", monkeypatch)
    reg = open_registry(load_settings())
    src = tmp_path / "run"
    src.mkdir()
    (src / "model.keras").write_bytes(os.urandom(256))
    manifest = lineage(["a", "b"])
    good = reg.register(src, manifest, actor="ci")
    local = reg.fetch(good.ref)
    facts = {"passed": True, "summary": {"passed": 3}, "suite_digest": trust.suites[0], "with_api": True}
    attest(reg, local.version, local.digest, "tests", facts, trust.key("ci-tester"))
    reg.promote(good.ref, expected_production=None, approver_key=trust.key("product-owner"))
    bad = reg.register(src, manifest, actor="ci")  # a signed version nobody tested or approved
    # A shared registry: Mallory may write every object; the trust folder stays root's (keys 0600).
    for path in [*registry.rglob("*"), registry]:
        os.chmod(path, 0o777 if path.is_dir() else 0o666)
    for path in (tmp_path / "trust").iterdir():
        os.chmod(path, 0o644)  # the policy and public keys are readable ...
    os.chmod(trust.key("product-owner"), 0o600)  # ... the approver's private key is not
    env = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path), "MLOPS_HOME": str(tmp_path / "mal-home"),
        "MLOPS_REGISTRY": f"file://{registry}", "MLOPS_TRUST_POLICY": str(trust.policy),
        "MLOPS_INPUT_SUBMITTER": "product-owner", "JENKINS_URL": "http://j/", "BUILD_URL": "http://j/1/",
        "MLOPS_DEPLOY_APPROVERS": mallory, "MLOPS_REGISTRY_MODEL_NAME": "xray-classifier",
    }  # fmt: skip
    run = ["runuser", "-u", mallory, "--", "env", "-i", *[f"{k}={v}" for k, v in env.items()]]
    # The approver's key is out of reach (this project's venv is not the account's to run: the
    # attacker uses the system's tools, which is all writing a registry takes).
    read = subprocess.run([*run, "cat", str(trust.key("product-owner"))], capture_output=True, text=True)
    assert read.returncode != 0 and "Permission denied" in read.stderr
    # Mallory writes the pointer directly instead.
    pointer = registry / "production" / "xray-classifier" / "pointer.json"
    state = json.loads(pointer.read_text())
    forged = {
        "action": "promote",
        "version": bad.version,
        "at": "2030-01-01T00:00:00Z",
        "actor": "po",
        "id": "f",
    }
    state.update(current=bad.version, previous=good.version, stack=[good.version, bad.version])
    state["history"].append(forged)
    copy = f"shutil.copytree({str(registry / 'testing' / 'xray-classifier' / str(bad.version))!r}, "
    copy += f"{str(registry / 'production' / 'xray-classifier' / str(bad.version))!r})"
    write = (
        f"import pathlib, shutil; {copy}; pathlib.Path({str(pointer)!r}).write_text({json.dumps(state)!r})"
    )
    subprocess.run([*run, "/usr/bin/python3", "-c", write], check=True, timeout=60)
    assert reg.pointer()["current"] == bad.version
    from deploy.model import resolve_model

    with pytest.raises(MlopsError, match="not trusted"):
        resolve_model(load_settings(), "production:current", verify=True)
    resolve_model(
        load_settings(), f"production:{good.version}", verify=True
    )  # the verified one still deploys
