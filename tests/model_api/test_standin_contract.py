"""The deploy tests' `mlops serve` stand-in answers like the real app, so what they prove holds for it.

tests/deploy/standin_serve.py replaces TensorFlow with a brightness rule; its HTTP contract (status
codes, JSON bodies and their shapes) must be the real app's, or the deploy tests would check
`mlops deploy` against a server that does not exist.
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from typing import Any

import pytest
from api_testlib import MODEL_NAME, image_bytes

STANDIN = Path(__file__).resolve().parents[1] / "deploy" / "standin_serve.py"


@pytest.fixture(scope="module")
def standin(monkeypatch_module) -> Any:
    """A test client of the stand-in app serving version 7, the version of the real test model."""
    spec = importlib.util.spec_from_file_location("standin_serve", STANDIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch_module.setenv("STANDIN_LOAD_S", "0")
    return module.create_app("production:7").test_client()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def shape(value: Any) -> Any:
    """The structure of a JSON value: dict keys with their shapes, list item shapes, scalar types."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value[:1]]
    return (
        "number" if isinstance(value, int | float) and not isinstance(value, bool) else type(value).__name__
    )


def test_readyz_bodies_are_the_same(client, standin):
    real, fake = client.get("/readyz"), standin.get("/readyz")
    assert (real.status_code, fake.status_code) == (200, 200)
    assert real.json == {"status": "ready", "model": {"name": MODEL_NAME, "version": 7}}
    assert fake.json == real.json


def test_healthz_has_the_same_shape(client, standin):
    real, fake = client.get("/healthz"), standin.get("/healthz")
    assert (real.status_code, fake.status_code) == (200, 200)
    assert shape(fake.json) == shape(real.json)


def test_model_summary_has_the_real_fields_and_no_invented_one(client, standin):
    real, fake = client.get("/model").json, standin.get("/model").json
    assert {"name", "version", "classes", "preprocessing", "model_file"} <= set(fake)
    assert set(fake) <= set(real), "the stand-in reports fields the real app does not"
    assert {key: shape(real[key]) for key in fake} == shape(fake)
    assert (fake["name"], fake["version"]) == (real["name"], real["version"])


@pytest.mark.parametrize("how", ["multipart", "raw body"])
def test_predict_has_the_same_shape_and_uses_the_models_classes(client, standin, how):
    body = image_bytes((64, 64))
    answers = []
    for app in (client, standin):
        if how == "multipart":
            response = app.post("/predict", data={"file": (io.BytesIO(body), "x.png")})
        else:
            response = app.post("/predict", data=body, content_type="image/png")
        assert response.status_code == 200, response.json
        answer = response.json
        assert set(answer["probabilities"]) == set(app.get("/model").json["classes"])
        assert answer["label"] in answer["probabilities"]
        answers.append(answer)
    real, fake = answers
    assert set(fake) == set(real) and shape(fake["model"]) == shape(real["model"])
    assert {k: shape(v) for k, v in fake.items() if k != "probabilities"} == {
        k: shape(v) for k, v in real.items() if k != "probabilities"
    }


def test_the_shape_check_can_fail():
    """A body with another key, or another type, has another shape."""
    assert shape({"ready": True}) != shape({"status": "ready", "model": {"name": "x", "version": 7}})
    assert shape({"version": 7}) != shape({"version": "7"})
