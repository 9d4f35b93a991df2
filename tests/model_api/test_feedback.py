"""POST /feedback: bearer token, a known class, a prediction id; stored like the prediction log."""

from __future__ import annotations

import time

import pytest
from api_testlib import CLASSES, MODEL_NAME, image_bytes

from core.settings import load_settings
from registry.monitoring_log import read_records
from registry.store import open_store

TOKEN = "test-feedback-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def feedback_app(bundle, tmp_path):
    from model_api import create_app

    settings = load_settings(overrides={"monitor.log_flush_interval_s": 0.1})
    store = open_store(f"file://{tmp_path / 'store'}")
    app = create_app(
        {
            "TESTING": True,
            "MODEL_BUNDLE": bundle,
            "SETTINGS": settings,
            "MONITOR_STORE": store,
            "FEEDBACK_TOKEN": TOKEN,
        }
    )
    yield app, store
    app.extensions["mlops_monitoring"].close()


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
    batch_id = f"{request_id}-1"  # the second image of a batch request has an id of its own
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
