"""Container tests: the real images, built as `make images` builds them, run by a real Docker engine.

`make test` starts the engine (scripts/docker-engine.sh); the session fixture builds the images with
scripts/build-images.sh (layer-cached, so a rebuild after no change takes seconds). Containers publish
their ports on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers import (
    API_IMAGE,
    APPROVER_KEY,
    ENGINE_HINT,
    ROOT,
    TESTER_KEY,
    TRAIN_IMAGE,
    docker,
    image_suite_digest,
    run_job,
    shared_dir,
    signing_keys,
    trust_set,
)


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    """Both images, built from this checkout exactly as `make images` builds them."""
    if shutil.which("docker") is None or docker("info", check=False).returncode != 0:
        pytest.fail(f"no Docker engine answers: {ENGINE_HINT}")
    done = subprocess.run(
        [str(ROOT / "scripts" / "build-images.sh")], capture_output=True, text=True, timeout=1800, cwd=ROOT
    )
    assert done.returncode == 0, f"make images failed:\n{done.stdout}{done.stderr[-6000:]}"
    return {"train": TRAIN_IMAGE, "api": API_IMAGE}


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo dataset on the host (batch 1), mounted read-only into containers."""
    out = tmp_path_factory.mktemp("demo-data") / "demo"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mlops"), "demo-data", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")},
        cwd=tmp_path_factory.mktemp("demo-cwd"),
    )
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="session")
def keys(images, tmp_path_factory) -> Path:
    """The signing key pair standing in for the Secrets (the Job signs, the API verifies), and the trust
    set around it: tester and approver keys and the mlops-trust-policy Secret's files (trust_set)."""
    folder = signing_keys(tmp_path_factory.mktemp("keys") / "pair")
    trust_set(folder, image_suite_digest())
    return folder


@pytest.fixture(scope="session")
def job_registry(images, demo_data, keys, tmp_path_factory) -> Path:
    """A registry the training Job's container trained (and signed) version 1 into."""
    registry = shared_dir(tmp_path_factory.mktemp("job") / "registry")
    done = run_job(registry, demo_data, keys)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return registry


@pytest.fixture
def container_name(request: pytest.FixtureRequest) -> Iterator[str]:
    """A container name unique to this test (removed by Container at exit)."""
    yield "mlops-test-" + "".join(c if c.isalnum() else "-" for c in request.node.name)[:60]


@pytest.fixture(scope="session")
def production_registry(job_registry: Path, demo_data: Path, keys: Path) -> Path:
    """The job registry with testing:1 model-tested and promoted, both inside the training image, under
    the trust policy the Job mounts."""
    # The model tests read the version's own test split from the dataset it was trained on.
    # As Jenkins does: the tests signed with the tester's credential, the API smoke tests run (the
    # chain requires both), then the approval signed with the approver's.
    tested = run_job(
        job_registry,
        demo_data,
        keys,
        verb="test-model",
        extra_args=("testing:1", "--with-api"),
        env={"MLOPS_TRUST_TESTER_KEY": TESTER_KEY},
    )
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]
    promoted = run_job(
        job_registry,
        demo_data,
        keys,
        verb="promote",
        extra_args=("testing:1", "--approved-by", "product-owner", "--approver-key", APPROVER_KEY),
    )
    assert promoted.returncode == 0, promoted.stdout[-3000:] + promoted.stderr[-3000:]
    return job_registry
