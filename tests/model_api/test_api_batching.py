"""Adaptive batching (model_api/batching.py): concurrent requests share a graph call and each gets its
own rows back; a bad image fails only the request that sent it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from api_testlib import image_bytes

from model_api.batching import Batcher
from model_api.bundle import BadImageError


def together(count: int, fn):
    """Call fn(i) for i in range(COUNT) from COUNT threads released at the same moment."""
    gate = threading.Barrier(count)

    def one(i: int):
        gate.wait()
        try:
            return fn(i)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_concurrent_requests_share_calls_and_get_their_own_rows(bundle):
    batcher = Batcher(bundle.predict_encoded_with_stats, max_size=8, max_wait_s=0.2)
    images = [[image_bytes(seed=i)] * (1 + i % 2) for i in range(6)]  # 9 images over 6 requests
    answers = together(6, lambda i: batcher(images[i]))
    assert max(batcher.batches) > 2  # some requests did share a call
    assert sum(batcher.batches) == 9
    for request, (probabilities, stats) in zip(images, answers, strict=True):
        alone, alone_stats = bundle.predict_encoded_with_stats(request)
        assert probabilities.shape == alone.shape and np.allclose(probabilities, alone, atol=1e-5)
        assert np.allclose(stats, alone_stats, atol=1e-5)


def test_a_bad_image_fails_only_its_own_request(bundle):
    batcher = Batcher(bundle.predict_encoded_with_stats, max_size=8, max_wait_s=0.2)
    bad = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
    answers = together(4, lambda i: batcher([bad] if i == 2 else [image_bytes(seed=i)]))
    assert isinstance(answers[2], BadImageError)
    assert all(isinstance(a, tuple) and a[0].shape == (1, 3) for i, a in enumerate(answers) if i != 2)


def test_a_full_request_never_waits(bundle):
    batcher = Batcher(bundle.predict_encoded_with_stats, max_size=2, max_wait_s=30)
    probabilities, _ = batcher([image_bytes(seed=1)] * 3)  # over max_size: straight to the graph
    assert probabilities.shape == (3, 3) and batcher.batches == []


def test_the_app_batches_when_configured_and_answers_as_without(bundle):
    from model_api import create_app

    plain = create_app({"TESTING": True, "MODEL_BUNDLE": bundle}).test_client()
    batched_app = create_app(
        {"TESTING": True, "MODEL_BUNDLE": bundle, "BATCH_MAX_SIZE": 8, "BATCH_MAX_WAIT_MS": 200}
    )
    batched = batched_app.test_client()
    bodies = [image_bytes(seed=20 + i) for i in range(4)]

    def post(client, body):
        response = client.post("/predict", data=body, headers={"Content-Type": "image/png"})
        assert response.status_code == 200, response.json
        return response.json["probabilities"]

    answers = together(4, lambda i: post(batched, bodies[i]))
    assert max(batched_app.extensions["mlops_batcher"].batches) > 1
    for got, alone in zip(answers, [post(plain, body) for body in bodies], strict=True):
        assert list(got) == list(alone) and got == pytest.approx(alone, abs=1e-5)


def test_batching_is_off_by_default(app):
    assert app.extensions["mlops_batcher"] is None
    with pytest.raises(ValueError, match="max_size"):
        Batcher(lambda images: (np.zeros(1), np.zeros(1)), max_size=1, max_wait_s=0)
