"""POST /feedback: bearer token, a known class, a prediction id; stored like the prediction log."""

from __future__ import annotations

import io
import secrets
import time

import pytest
from api_testlib import CLASSES, MODEL_NAME, image_bytes

from core.settings import load_settings
from registry.monitoring_log import read_records
from registry.store import open_store

TOKEN = "test-feedback-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def make_app(bundle, store, secret: str = "", **monitor):
    from model_api import create_app

    settings = load_settings(overrides={"monitor.log_flush_interval_s": 0.1, **monitor})
    return create_app(
        {
            "TESTING": True,
            "MODEL_BUNDLE": bundle,
            "SETTINGS": settings,
            "MONITOR_STORE": store,
            "FEEDBACK_TOKEN": TOKEN,
            "REQUEST_ID_SECRET": secret,
        }
    )


@pytest.fixture
def feedback_app(bundle, tmp_path):
    store = open_store(f"file://{tmp_path / 'store'}")
    app = make_app(bundle, store)
    yield app, store
    app.extensions["mlops_monitoring"].close()


def stored_feedback(app, store) -> list[dict]:
    app.extensions["mlops_monitoring"].close()  # flush
    return list(read_records(store, MODEL_NAME, "feedback", 0, time.time() + 60))


def predict(client) -> str:
    response = client.post("/predict", data=image_bytes(seed=11), content_type="image/png")
    assert response.status_code == 200
    return response.json["request_id"]


def test_feedback_with_the_token_is_accepted_and_stored(feedback_app):
    app, store = feedback_app
    client = app.test_client()
    request_id = predict(client)
    response = client.post("/feedback", json={"request_id": request_id, "label": CLASSES[2]}, headers=AUTH)
    assert response.status_code == 202, response.json
    assert response.json == {"request_id": request_id, "label": CLASSES[2], "status": "accepted"}
    batch = client.post(
        "/predict", data={"file": [(io.BytesIO(image_bytes(seed=s)), "x.png") for s in (1, 2)]}
    )
    batch_id = batch.json[1]["request_id"]  # the second image of a batch request has an id of its own
    assert batch_id == f"{batch.headers['X-Request-Id']}-1"
    assert (
        client.post("/feedback", json={"request_id": batch_id, "label": CLASSES[0]}, headers=AUTH).status_code
        == 202
    )
    app.extensions["mlops_monitoring"].close()
    records = list(read_records(store, MODEL_NAME, "feedback", 0, time.time() + 60))
    assert [(r["id"], r["label"]) for r in records] == [(request_id, CLASSES[2]), (batch_id, CLASSES[0])]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN}],
    ids=["none", "wrong", "basic", "no-scheme"],
)
def test_feedback_without_the_right_bearer_token_is_401(feedback_app, headers):
    app, _ = feedback_app
    response = app.test_client().post(
        "/feedback", json={"request_id": "a" * 32, "label": CLASSES[0]}, headers=headers
    )
    assert response.status_code == 401
    assert "bearer token" in response.json["error"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"request_id": "a" * 32, "label": "Cat"}, 422, "unknown label 'Cat'"),
        ({"request_id": "a" * 32, "label": 3}, 422, "unknown label 3"),
        ({"request_id": "not-an-id", "label": CLASSES[0]}, 422, "not a prediction id"),
        ({"request_id": "a" * 32}, 400, "send a JSON object"),
        ([1, 2], 400, "send a JSON object"),
    ],
)
def test_bad_feedback_gets_a_json_error_naming_the_problem(feedback_app, body, status, message):
    app, _ = feedback_app
    response = app.test_client().post("/feedback", json=body, headers=AUTH)
    assert response.status_code == status
    assert message in response.json["error"]


def test_feedback_that_is_not_json_is_415_or_400(feedback_app):
    app, _ = feedback_app
    client = app.test_client()
    assert (
        client.post("/feedback", data="label=x", content_type="text/plain", headers=AUTH).status_code == 415
    )
    broken = client.post("/feedback", data="{not json", content_type="application/json", headers=AUTH)
    assert broken.status_code == 400 and "JSON object" in broken.json["error"]


def test_feedback_is_disabled_without_a_configured_token(bundle, tmp_path):
    from model_api import create_app

    store = open_store(f"file://{tmp_path / 'store'}")
    app = create_app({"TESTING": True, "MODEL_BUNDLE": bundle, "MONITOR_STORE": store, "FEEDBACK_TOKEN": ""})
    response = app.test_client().post("/feedback", json={"request_id": "a" * 32, "label": CLASSES[0]})
    assert response.status_code == 503
    assert "MLOPS_FEEDBACK_TOKEN" in response.json["error"]


def test_the_token_is_a_secret_refused_in_the_settings_file(tmp_path):
    from core.errors import UsageError

    config = tmp_path / "mlops.toml"
    config.write_text('[monitor]\nfeedback_token = "in-git"\n')
    with pytest.raises(UsageError, match="secret"):
        load_settings(config_file=config)
    assert load_settings(env={"MLOPS_FEEDBACK_TOKEN": "from-env"}).monitor.feedback_token == "from-env"
    assert "from-env" not in repr(load_settings(env={"MLOPS_FEEDBACK_TOKEN": "from-env"}))


def test_feedback_for_ids_never_issued_is_404_and_nothing_is_stored(feedback_app):
    app, store = feedback_app
    client = app.test_client()
    single = predict(client)
    batch = client.post(
        "/predict", data={"file": [(io.BytesIO(image_bytes(seed=s)), "x.png") for s in (1, 2)]}
    )
    batch_id = batch.headers["X-Request-Id"]
    refused = client.post("/predict", data=b"not an image", content_type="image/png")
    assert refused.status_code == 400
    never = {
        "random": secrets.token_hex(16),
        "single image as a batch": f"{single}-0",
        "past the batch": f"{batch_id}-2",
        "a batch as a single image": batch_id,
        "a refused request's id": refused.headers["X-Request-Id"],
        "a probe's id": client.get("/healthz").headers["X-Request-Id"],
        "a forged tag": single[:16] + format(int(single[16:], 16) ^ 1, "016x"),
    }
    for what, request_id in never.items():
        response = client.post(
            "/feedback", json={"request_id": request_id, "label": CLASSES[0]}, headers=AUTH
        )
        assert response.status_code == 404, (what, response.json)
        assert f"request_id {request_id!r} names no prediction this server made" in response.json["error"]
    assert stored_feedback(app, store) == []


def test_ids_verify_in_every_worker_and_restart_sharing_the_secret(bundle, tmp_path):
    """No shared state: a second app (another worker, replica or a restart) with the secret takes the ids."""
    store = open_store(f"file://{tmp_path / 'store'}")
    issuer, other, stranger = (make_app(bundle, store, s) for s in ("secret-a", "secret-a", "secret-b"))
    request_id = predict(issuer.test_client())
    body = {"request_id": request_id, "label": CLASSES[1]}
    assert stranger.test_client().post("/feedback", json=body, headers=AUTH).status_code == 404
    assert other.test_client().post("/feedback", json=body, headers=AUTH).status_code == 202
    for app in (issuer, stranger):
        app.extensions["mlops_monitoring"].close()
    assert [(r["id"], r["label"]) for r in stored_feedback(other, store)] == [(request_id, CLASSES[1])]


@pytest.mark.slow
def test_a_flood_of_10000_unknown_ids_stores_nothing_and_is_rate_limited(feedback_app):
    """The issue's flood: every post refused, most of them by the token's rate limit before any parsing."""
    app, store = feedback_app
    client = app.test_client()
    started = time.monotonic()
    codes: dict[int, int] = {}
    for _ in range(10_000):
        body = {"request_id": secrets.token_hex(16), "label": CLASSES[0]}
        status = client.post("/feedback", json=body, headers=AUTH).status_code
        codes[status] = codes.get(status, 0) + 1
    elapsed = time.monotonic() - started
    monitor = load_settings().monitor
    assert set(codes) == {404, 429}, codes
    # The bucket's burst, plus what it refilled while the flood ran.
    assert (
        monitor.feedback_burst
        <= codes[404]
        <= monitor.feedback_burst + monitor.feedback_rate_per_s * elapsed + 1
    )
    assert stored_feedback(app, store) == []


def test_the_rate_limit_is_429_with_retry_after_then_recovers(bundle, tmp_path):
    store = open_store(f"file://{tmp_path / 'store'}")
    app = make_app(bundle, store, **{"monitor.feedback_rate_per_s": 1.0, "monitor.feedback_burst": 3})
    client = app.test_client()
    ids = [predict(client) for _ in range(5)]
    post = lambda i: client.post("/feedback", json={"request_id": ids[i], "label": CLASSES[2]}, headers=AUTH)  # noqa: E731
    assert [post(i).status_code for i in range(3)] == [202, 202, 202]
    limited = post(3)
    assert limited.status_code == 429 and "too many feedback requests" in limited.json["error"]
    assert limited.headers["Retry-After"] == "1"
    time.sleep(1.05)
    assert post(4).status_code == 202
    assert sorted(r["id"] for r in stored_feedback(app, store)) == sorted(ids[:3] + ids[4:])
