"""Monitoring end to end on real data: a trained version under gunicorn, held-out and shifted traffic,
feedback through POST /feedback, and `mlops monitor` judging each window.

- held-out traffic (the version's own test split, and unseen images from the same generator) is not
  flagged: the false-alarm rate over repeated windows is measured and must be 0 of 20;
- the same images with a realistic shift (exposure, noise, inverted polarity, another scanner's
  resolution) are each flagged (exit 3), naming the statistic that moved;
- correct feedback keeps live accuracy above the gate; wrong labels drop it below and exit 3.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
from live_server import Server, start_serve, stop_server
from shifts import SHIFTS, shifted

from mlops.cli import main
from registry import Registry
from training.demo_data import write_demo_data

pytestmark = pytest.mark.slow

TOKEN = "shifted-traffic-feedback-token"
WINDOW = 200  # requests per window
HELD_OUT_WINDOWS = 10  # per source: the test split, unseen images
RESULTS: dict[str, dict] = {}  # printed at the end of the module (-s) for the closing note


@dataclass
class Deployment:
    folder: Path
    home: Path
    registry: str
    config: Path
    server: Server
    test_split: list[tuple[Path, str]]  # the version's held-out split: (file, label)
    unseen: list[tuple[Path, str]]  # images the model never saw, same generator (demo batch 2)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Demo data → `mlops train` (registers testing:1 with its reference profile) → `mlops serve`."""
    folder = tmp_path_factory.mktemp("monitoring-e2e")
    home = folder / ".mlops"
    registry = f"file://{home / 'registry'}"
    write_demo_data(folder / "demo", batch=1, per_class=300)
    write_demo_data(folder / "unseen", batch=2, per_class=100)
    config = folder / "mlops.toml"
    config.write_text("[monitor]\nmin_records = 150\nmin_feedback = 50\nlog_flush_interval_s = 0.5\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env.update({"MLOPS_HOME": str(home), "MLOPS_CONFIG": str(config), "TF_CPP_MIN_LOG_LEVEL": "2"})
    train = [sys.executable, "-m", "mlops.cli", "train", "--data", str(folder / "demo"), "--epochs", "8"]
    trained = subprocess.run(train, env=env, cwd=folder, capture_output=True, text=True, timeout=600)
    assert trained.returncode == 0, trained.stderr[-3000:]
    version = folder / ".mlops/registry/testing/xray-classifier/1"
    split = json.loads((version / "test_split.json").read_text())
    test_split = [(folder / "demo" / row["path"], row["label"]) for row in split]
    unseen = [(p, p.parent.name) for p in sorted((folder / "unseen").rglob("b2_*.png"))]
    server = start_serve(
        "testing:1",
        folder,
        env={"MLOPS_REGISTRY": registry, "MLOPS_CONFIG": str(config), "MLOPS_FEEDBACK_TOKEN": TOKEN},
    )
    try:
        yield Deployment(folder, home, registry, config, server, test_split, unseen)
    finally:
        stop_server(server)
        if RESULTS:
            print("\nmonitoring on shifted traffic:\n" + json.dumps(RESULTS, indent=1))


def send(server: Server, images: list[bytes]) -> tuple[float, float, list[dict]]:
    """POST each image to /predict from 4 client threads; the window [since, until) covers them all."""
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=4))

    def one(data: bytes) -> dict:
        response = session.post(
            server.url + "/predict", data=data, headers={"Content-Type": "image/png"}, timeout=60
        )
        assert response.status_code == 200, response.text
        return response.json()

    since = time.time()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(one, images))
    until = time.time() + 0.001
    return since, until, answers


def monitor(deployment: Deployment, since: float, until: float, *extra: str) -> tuple[int, dict]:
    """`mlops monitor` in-process over [since, until), waiting for the workers' next flush first."""
    time.sleep(1.5)  # flush interval 0.5 s: every record of the window is stored by now

    out = io.StringIO()
    argv = [
        "--config",
        str(deployment.config),
        "--home",
        str(deployment.home),
        "--registry",
        deployment.registry,
    ]
    argv += [
        "monitor",
        "--model",
        "testing:1",
        "--since",
        iso(since),
        "--until",
        iso(until),
        "--json",
        *extra,
    ]
    with redirect_stdout(out):
        code = main(argv)
    return code, json.loads(out.getvalue())


def iso(t: float) -> str:
    """Epoch seconds as ISO 8601 with microseconds (windows are a few seconds apart)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def sample(items: list, n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [items[i] for i in rng.integers(0, len(items), n)]


def test_held_out_traffic_is_not_flagged(deployment: Deployment):
    """False-alarm rate over repeated windows of traffic the reference describes: 0 of 20."""
    windows = []
    for source, pool in (("test split", deployment.test_split), ("unseen", deployment.unseen)):
        for w in range(HELD_OUT_WINDOWS):
            chosen = sample(pool, WINDOW, seed=100 * len(windows) + w)
            since, until, _ = send(deployment.server, [p.read_bytes() for p, _ in chosen])
            windows.append((source, since, until))
    flagged = []
    for source, since, until in windows:
        code, summary = monitor(deployment, since, until, "--no-record")
        assert summary["records"] == WINDOW and summary["drift"]["judged"], summary
        rows = [r for r in summary["drift"]["features"] if r["psi"] is not None]
        worst = max(rows, key=lambda r: r["psi"])
        flagged.append(
            {
                "source": source,
                "exit": code,
                "drifted": summary["drift"]["drifted"],
                "max_psi": f"{worst['psi']} ({worst['feature']})",
                "min_p": round(min(r["p_value"] for r in rows if r["p_value"] is not None), 4),
                # What a PSI-only rule (no two-sample test) would have said.
                "psi_alone_alarms": any(r["psi"] >= 0.2 for r in rows),
            }
        )
    RESULTS["held-out windows"] = flagged
    alarms = [w for w in flagged if w["exit"] != 0]
    RESULTS["false-alarm rate"] = f"{len(alarms)}/{len(flagged)}"
    RESULTS["false-alarm rate with PSI alone"] = (
        f"{sum(w['psi_alone_alarms'] for w in flagged)}/{len(flagged)}"
    )
    assert alarms == [], flagged


@pytest.mark.parametrize(
    ("shift", "expected"),
    [
        ("exposure", {"mean"}),
        ("noise", {"std"}),
        ("inverted polarity", {"mean"}),
        ("scanner resolution", {"width", "height"}),
    ],
)
def test_shifted_traffic_is_flagged(deployment: Deployment, shift: str, expected: set[str]):
    chosen = sample(deployment.unseen, WINDOW, seed=list(SHIFTS).index(shift))
    since, until, _ = send(deployment.server, shifted([p for p, _ in chosen], shift))
    code, summary = monitor(deployment, since, until, "--no-record")
    RESULTS.setdefault("shifts", {})[shift] = {
        "exit": code,
        "drifted": summary["drift"]["drifted"],
        "psi": {r["feature"]: r["psi"] for r in summary["drift"]["features"] if r["drifted"]},
    }
    assert code == 3, summary["drift"]
    assert expected <= set(summary["drift"]["drifted"]), summary["drift"]["drifted"]


def test_feedback_with_wrong_labels_drops_live_accuracy_below_the_gate(deployment: Deployment):
    chosen = sample(deployment.unseen, WINDOW, seed=7)
    since, until, answers = send(deployment.server, [p.read_bytes() for p, _ in chosen])
    truth = [label for _, label in chosen]
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def give(labels: list[str]) -> None:
        for answer, label in zip(answers[:100], labels, strict=True):
            body = {"request_id": answer["request_id"], "label": label}
            response = requests.post(deployment.server.url + "/feedback", json=body, headers=auth, timeout=30)
            assert response.status_code == 202, response.text

    give(truth[:100])  # radiologists confirm the true classes
    code, summary = monitor(deployment, since, until, "--no-record")
    assert summary["accuracy"]["n"] == 100 and summary["accuracy"]["judged"]
    assert code == 0 and summary["accuracy"]["accuracy"] >= 0.8, summary["accuracy"]

    classes = sorted({label for _, label in deployment.unseen})
    wrong = [classes[(classes.index(t) + 1) % 3] if i % 2 else t for i, t in enumerate(truth[:100])]
    give(wrong)  # later labels win: half of them now disagree with the data
    code, summary = monitor(deployment, since, until)
    RESULTS["feedback"] = {
        "exit": code,
        "live_accuracy": summary["accuracy"]["accuracy"],
        "alerts": summary["alerts"],
    }
    assert code == 3
    assert summary["accuracy"]["accuracy"] < 0.8 and summary["retrain_recommended"] is True
    assert summary["recorded"] is True  # on testing:1's annotations and in the audit log

    # Closing the loop (off by default): the same check with --trigger-retrain runs the data pipeline
    # on newly labelled data, which registers a fine-tuned testing:2 whose parent is testing:1.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env.update({"MLOPS_HOME": str(deployment.home), "MLOPS_REGISTRY": deployment.registry})
    env.update({"MLOPS_CONFIG": str(deployment.config), "MLOPS_TRAIN_FINE_TUNE_EPOCHS": "2"})
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    window = ["--since", iso(since), "--until", iso(until)]
    data = str(deployment.folder / "unseen")
    command = [sys.executable, "-m", "mlops.cli", "monitor", "--model", "testing:1", *window, "--json"]
    command += ["--no-record", "--trigger-retrain", "--data", data]
    done = subprocess.run(
        command, env=env, cwd=deployment.folder, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 3, done.stderr[-3000:]
    retrain = json.loads(done.stdout)["retrain"]  # stdout stays one JSON document
    assert retrain["data"] == data and retrain["exit_code"] in (0, 3), done.stderr[-3000:]
    assert "==> stage 1: retrain + gate + register" in done.stderr
    retrained = Registry.open(deployment.registry, "xray-classifier", cache_dir=deployment.folder / "c")
    manifest = retrained.resolve("testing:2").manifest
    assert manifest.parent is not None and manifest.parent.version == 1
    assert manifest.dataset.uri is not None and manifest.dataset.uri.endswith("unseen")
    RESULTS["feedback"]["retrain"] = {"pipeline_exit": retrain["exit_code"], "registered": "testing:2"}
