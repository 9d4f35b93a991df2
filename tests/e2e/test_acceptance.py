"""Final acceptance: the whole system on one machine through the `mlops` console script.

code pipeline (demo data → train → gate → register → model tests with the API → email), then new
data → data pipeline (retrain from the first version), then approval → promote → local deploy →
POST /predict; finally the registry lineage tells the whole story.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from core.processes import free_port, wait_ready

pytestmark = pytest.mark.slow

MLOPS = str(Path(sys.executable).parent / "mlops")
# The default training settings (what `make demo` uses), one API worker to spare the CPU.
FAST_TRAINING = {"MLOPS_API_WORKERS": "1"}


def mlops(*args: str, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """Run the real console script; print its output so a failure shows every stage."""
    result = subprocess.run(
        [MLOPS, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    print(f"$ mlops {' '.join(args)}  -> exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def show(ref: str, env: dict[str, str]) -> dict:
    """The manifest (with annotations) of REF, as `mlops registry show --json` prints it."""
    result = mlops("registry", "show", ref, "--json", env=env)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["ref"].endswith(f":{info['version']}")
    return info["manifest"]


def an_image(folder: Path) -> Path:
    return next(p for p in sorted(folder.rglob("*")) if p.suffix.lower() in {".png", ".jpg", ".jpeg"})


def test_code_then_data_pipeline_then_approve_deploy_and_predict(tmp_path):
    port = free_port()
    # A fresh home: the first pipeline run makes the laptop trust set (trainer, tester and
    # product-owner keys, and a policy naming them), so signing is required from the start.
    env = {**os.environ, **FAST_TRAINING, "MLOPS_API_PORT": str(port)}
    home = Path(env["MLOPS_HOME"])

    # 1. Push code: the code pipeline makes demo data itself, trains, gates, registers, tests, emails.
    code = mlops("pipeline", "code", env=env)
    assert code.returncode == 0, "code pipeline failed"
    for stage in ("demo data", "train", "model tests", "notify"):
        assert stage in code.stdout
    first = show("testing:latest", env)
    assert first["version"] == 1
    assert first["gate"]["passed"] is True
    # The laptop path is signed too: the pipeline made the keys and the trust policy in the home folder.
    assert "trust: created the trust policy" in code.stdout and first["signed_by"]
    assert (home / "keys" / "approver-product-owner.pem").is_file()
    env["MLOPS_SIGNING_REQUIRED"] = "true"  # from here on an unsigned version would be refused

    # 2. Push data: a second batch lands beside the first; retrained from the first version.
    dataset = home / "data" / "demo"  # where `mlops pipeline code` made the demo data
    assert mlops("demo-data", "--batch", "2", "--out", str(dataset), env=env).returncode == 0
    data = mlops("pipeline", "data", "--data", str(dataset), env=env)
    assert data.returncode == 0, "data pipeline failed"
    second = show("testing:latest", env)
    assert second["version"] == 2

    # Approve: a name with no approver key approves nothing (refused and logged; nothing changes).
    # With the product owner's key (the home one for --approved-by product-owner), over the empty
    # production we saw, it goes through.
    refused = mlops("promote", "testing:2", "--approved-by", "intruder", env=env)
    assert refused.returncode == 3
    assert "approver key" in refused.stderr
    assert mlops("registry", "show", "production:current", env=env).returncode != 0  # still empty
    promoted = mlops(
        "promote", "testing:2", "--approved-by", "product-owner", "--expect-production", "none",
        "--reason", "e2e", env=env,
    )  # fmt: skip
    assert promoted.returncode == 0

    # Push tests: the tests pipeline runs the suite on production:current and records it there.
    tests = mlops("pipeline", "tests", env=env)
    assert tests.returncode == 0, "tests pipeline failed"
    assert "test-model production:current" in tests.stdout

    # 3. Lineage: parent, distinct datasets, approvals and test results are recorded.
    first, second = show("testing:1", env), show("testing:2", env)
    production = show("production:current", env)
    assert second["parent"]["version"] == 1
    assert first["parent"] is None
    assert first["dataset"]["fingerprint"] != second["dataset"]["fingerprint"]
    assert production["version"] == 2
    approvals = production["annotations"]["approvals"]
    assert [a["approved_by"] for a in approvals] == ["product-owner"]
    for manifest in (first, second):
        results = manifest["annotations"]["tests"]
        assert results and results[-1]["passed"] is True
    assert len(production["annotations"]["tests"]) == 2  # the data pipeline's and the tests pipeline's
    # The product owner was emailed for each pipeline run (outbox: no SMTP host configured).
    assert len(list((home / "outbox").glob("*.eml"))) >= 3
    # Every decision is on the record, the refusal included, in an intact hash chain.
    audit = json.loads(mlops("registry", "audit", "--json", env=env).stdout)
    assert [e["attempted"] for e in audit if e["action"] == "refuse"] == ["promote"]
    assert mlops("registry", "audit", "--verify", env=env).returncode == 0

    # 4. Deploy the local API on production:current and query it.
    deployed = mlops("deploy", "--target", "local", env=env, timeout=300)
    try:
        assert deployed.returncode == 0, "local deploy failed"
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/readyz", 120, interval_s=1)
        image = an_image(dataset)
        with image.open("rb") as handle:
            response = requests.post(f"{base}/predict", files={"file": (image.name, handle)}, timeout=30)
        assert response.status_code == 200, response.text
        prediction = response.json()
        assert prediction["model"]["version"] == 2
        assert prediction["label"] in prediction["probabilities"]
        assert abs(sum(prediction["probabilities"].values()) - 1.0) < 1e-3
        assert prediction["latency_ms"] >= 0
    finally:
        mlops("deploy", "--target", "local", "--stop", env=env, timeout=120)

    # Deploy stopped: nothing listens on the API port any more.
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
