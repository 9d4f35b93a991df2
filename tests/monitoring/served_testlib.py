"""The demo model trained and served under gunicorn, shared by the end-to-end monitoring tests: deploy it,
send windows of requests, give feedback, and run `mlops monitor` on a window."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import requests
from live_server import Server, start_serve

from mlops.cli import main
from training.demo_data import write_demo_data

FEEDBACK_TOKEN = "served-monitoring-feedback-token"
TRAFFIC_TOKEN = "served-monitoring-traffic-token"  # what deploy/smoke.py and the model tests send


@dataclass
class Deployment:
    folder: Path
    home: Path
    registry: str
    config: Path
    server: Server
    test_split: list[tuple[Path, str]]  # the version's held-out split: (file, label)
    unseen: list[tuple[Path, str]]  # images the model never saw, same generator (demo batch 2)

    def serve(self, ref: str) -> Server:
        """Another server on REF, configured like the first (the caller stops it)."""
        return start_serve(ref, self.folder, workers=1, env=server_env(self.registry, self.config))


def server_env(registry: str, config: Path) -> dict[str, str]:
    return {
        "MLOPS_REGISTRY": registry,
        "MLOPS_CONFIG": str(config),
        "MLOPS_FEEDBACK_TOKEN": FEEDBACK_TOKEN,
        "MLOPS_TRAFFIC_TOKEN": TRAFFIC_TOKEN,
    }


def deploy_demo(folder: Path) -> Deployment:
    """Demo data → `mlops train` (registers testing:1 with its reference profile) → `mlops serve`."""
    home = folder / ".mlops"
    registry = f"file://{home / 'registry'}"
    write_demo_data(folder / "demo", batch=1, per_class=300)
    write_demo_data(folder / "unseen", batch=2, per_class=100)
    config = folder / "mlops.toml"
    config.write_text("[monitor]\nmin_records = 150\nmin_feedback = 50\nlog_flush_interval_s = 0.5\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env.update({"MLOPS_HOME": str(home), "MLOPS_CONFIG": str(config), "TF_CPP_MIN_LOG_LEVEL": "2"})
    # The laptop's trust set first (as `mlops pipeline` makes on first use): the version is signed, so
    # the data pipeline (`mlops monitor --trigger-retrain`) may fine-tune it under the trust policy.
    keys = [sys.executable, "-m", "mlops.cli", "keys", "init", "--trust", "--if-missing"]
    made = subprocess.run(keys, env=env, cwd=folder, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr[-3000:]
    train = [sys.executable, "-m", "mlops.cli", "train", "--data", str(folder / "demo"), "--epochs", "8"]
    trained = subprocess.run(train, env=env, cwd=folder, capture_output=True, text=True, timeout=600)
    assert trained.returncode == 0, trained.stderr[-3000:]
    version = folder / ".mlops/registry/testing/xray-classifier/1"
    split = json.loads((version / "test_split.json").read_text())
    test_split = [(folder / "demo" / row["path"], row["label"]) for row in split]
    unseen = [(p, p.parent.name) for p in sorted((folder / "unseen").rglob("b2_*.png"))]
    server = start_serve("testing:1", folder, env=server_env(registry, config))
    return Deployment(folder, home, registry, config, server, test_split, unseen)


def send(
    server: Server, images: list[bytes], headers: dict[str, str] | None = None
) -> tuple[float, float, list[dict]]:
    """POST each image to /predict from 4 client threads; the window [since, until) covers them all."""
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=4))

    def one(data: bytes) -> dict:
        response = session.post(
            server.url + "/predict",
            data=data,
            headers={"Content-Type": "image/png", **(headers or {})},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        return response.json()

    since = time.time()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(one, images))
    until = time.time() + 0.001
    return since, until, answers


def give_feedback(server: Server, answers: list[dict], labels: list[str]) -> None:
    """POST /feedback: the true label of each answered request, by its request id."""
    auth = {"Authorization": f"Bearer {FEEDBACK_TOKEN}"}
    for answer, label in zip(answers, labels, strict=True):
        body = {"request_id": answer["request_id"], "label": label}
        response = requests.post(server.url + "/feedback", json=body, headers=auth, timeout=30)
        while response.status_code == 429:  # the token's rate limit: wait as told, as a client should
            time.sleep(float(response.headers.get("Retry-After", "1")))
            response = requests.post(server.url + "/feedback", json=body, headers=auth, timeout=30)
        assert response.status_code == 202, response.text


def monitor(
    deployment: Deployment, since: float, until: float, *extra: str, model: str = "testing:1"
) -> tuple[int, dict]:
    """`mlops monitor --json` in-process over [since, until), waiting for the workers' next flush first."""
    time.sleep(1.5)  # flush interval 0.5 s: every record of the window is stored by now
    out = io.StringIO()
    argv = ["--config", str(deployment.config), "--home", str(deployment.home)]
    argv += ["--registry", deployment.registry, "monitor", "--model", model]
    argv += ["--since", iso(since), "--until", iso(until), "--json", *extra]
    with redirect_stdout(out):
        code = main(argv)
    return code, json.loads(out.getvalue())


def iso(t: float) -> str:
    """Epoch seconds as ISO 8601 with microseconds (windows are a few seconds apart)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def sample(items: list, n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [items[i] for i in rng.integers(0, len(items), n)]


def standin_collapsed(deployment: Deployment, folder: Path) -> str:
    """Register a stand-in for a collapsed model: testing:1's files and figures, but a model.keras that
    answers `normal` for every image with confidence ~0.99. Returns its ref."""
    import keras

    from core.settings import load_settings
    from registry import open_registry

    # The deployment's home: its trust set signs the stand-in, as it signed testing:1.
    settings = load_settings(overrides={"home": str(deployment.home), "registry.uri": deployment.registry})
    registry = open_registry(settings)
    first = registry.fetch("testing:1")
    manifest = first.manifest
    size, channels = manifest.preprocessing.image_size, manifest.preprocessing.channels
    bias = [5.0 if c == "normal" else 0.0 for c in manifest.classes]
    model = keras.Sequential(
        [
            keras.Input((size, size, channels)),
            keras.layers.Flatten(),
            keras.layers.Dense(
                len(bias),
                "softmax",
                kernel_initializer="zeros",
                bias_initializer=keras.initializers.Constant(bias),
            ),
        ]
    )
    src = folder / "collapsed"
    src.mkdir()
    for path in Path(first.dir).iterdir():
        if path.is_file() and path.name not in ("manifest.json", manifest.model_file):
            (src / path.name).write_bytes(path.read_bytes())
    model.save(src / manifest.model_file)
    return registry.register(src, manifest, actor="tester", reason="collapsed stand-in").ref
