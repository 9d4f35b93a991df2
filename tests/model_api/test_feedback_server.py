"""POST /feedback under real gunicorn: an id issued before a restart (another process) is still taken."""

from __future__ import annotations

import secrets

import pytest
from api_testlib import CLASSES, image_bytes
from live_server import start_serve, stop_server

pytestmark = pytest.mark.slow

TOKEN = "server-feedback-token-0123456789"


def test_ids_survive_a_restart_and_unknown_ids_are_refused(model_dir, tmp_path):
    """Nothing is shared between the two servers but the secret: so it goes across workers and replicas."""
    env = {"MLOPS_FEEDBACK_TOKEN": TOKEN, "MLOPS_REQUEST_ID_SECRET": secrets.token_hex(32)}
    model = str(model_dir / "model.keras")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    first = start_serve(model, tmp_path, workers=1, threads=2, env=env)
    try:
        issuer = first.get("/healthz").json()["worker_pid"]
        ids = [
            first.post("/predict", data=image_bytes(seed=s), headers={"Content-Type": "image/png"}).json()[
                "request_id"
            ]
            for s in range(3)
        ]
    finally:
        stop_server(first)
    second = start_serve(model, tmp_path, workers=1, threads=2, env=env)
    try:
        assert second.get("/healthz").json()["worker_pid"] != issuer
        for request_id in ids:
            body = {"request_id": request_id, "label": CLASSES[0]}
            assert second.post("/feedback", json=body, headers=auth).status_code == 202
        forged = second.post(
            "/feedback", json={"request_id": secrets.token_hex(16), "label": CLASSES[0]}, headers=auth
        )
        assert forged.status_code == 404 and "names no prediction" in forged.json()["error"]
        assert second.get("/readyz").status_code == 200
    finally:
        stop_server(second)
