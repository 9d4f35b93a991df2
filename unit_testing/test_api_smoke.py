"""HTTP smoke tests against a live API serving the model under test (a clone of production)."""

from __future__ import annotations

import pytest
import requests

from core.traffic import traffic_headers

TIMEOUT_S = 30
HEADERS = traffic_headers("test")  # the model tests' requests stay out of production's window


@pytest.fixture(scope="session")
def api_url(request: pytest.FixtureRequest) -> str:
    url = request.config.getoption("--api-url")
    if not url:
        pytest.skip(
            "no --api-url given: no live API to smoke-test (`mlops test-model REF --with-api` starts one)"
        )
    return url.rstrip("/")


def test_alive_and_ready(api_url):
    assert requests.get(f"{api_url}/healthz", timeout=TIMEOUT_S).status_code == 200
    assert requests.get(f"{api_url}/readyz", timeout=TIMEOUT_S).status_code == 200


def test_serves_the_version_under_test(api_url, manifest):
    info = requests.get(f"{api_url}/model", timeout=TIMEOUT_S).json()
    served = info.get("model", info)
    assert (served.get("name"), served.get("version")) == (manifest.name, manifest.version)


def test_predict_matches_local_prediction(api_url, served, sample, classes, manifest):
    img = sample[0]
    response = requests.post(
        f"{api_url}/predict", headers=HEADERS, files={"file": (img.path, img.data)}, timeout=TIMEOUT_S
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body["probabilities"]) == set(classes)
    assert abs(sum(body["probabilities"].values()) - 1.0) < 1e-3
    assert body["model"]["version"] == manifest.version
    assert body["label"] == classes[int(served.predict_encoded([img.data])[0].argmax())]


def test_raw_body_predict_works(api_url, sample, classes):
    response = requests.post(f"{api_url}/predict", headers=HEADERS, data=sample[0].data, timeout=TIMEOUT_S)
    assert response.status_code == 200, response.text
    assert response.json()["label"] in classes


def test_bad_input_is_a_clear_4xx(api_url):
    response = requests.post(f"{api_url}/predict", headers=HEADERS, data=b"not an image", timeout=TIMEOUT_S)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:200])
    assert "error" in response.json()
