"""POST /feedback: the true label of a logged prediction, from someone holding the feedback token.

Body: `{"request_id": "<id from /predict or v2>", "label": "<one of the model's classes>"}` with
`Authorization: Bearer <token>` (the secret MLOPS_FEEDBACK_TOKEN). Records are queued and stored in
batches like the prediction log (monitoring/<model>/feedback/); `mlops monitor` joins them with the
predictions by id for live accuracy. 202 once queued; the latest label for an id wins.

Only ids this deployment issued are taken (model_api/request_ids.py: signed ids, checked without
shared state, so any worker or replica accepts an id another issued): an id it never issued is 404
and nothing is stored. Each token gets a token bucket per worker (`monitor.feedback_rate_per_s`,
`monitor.feedback_burst`): beyond it 429 with Retry-After, so what one token can store is bounded.
"""

from __future__ import annotations

import hmac
import time
from datetime import UTC, datetime

from flask import Blueprint, Response, current_app, jsonify, request

from model_api import monitoring

bp = Blueprint("feedback", __name__)


def _error(message: str, status: int) -> tuple[Response, int]:
    response = jsonify(error=message)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="mlops feedback"'
    return response, status


def _authorized(expected: str) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    # Constant-time comparison: the response time must not tell how much of a guess was right.
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected.encode())


@bp.post("/feedback")
def feedback() -> tuple[Response, int]:
    """Queue the true label of one prediction."""
    watch = monitoring.current()
    if watch.feedback is None:
        return _error(
            "feedback is disabled on this server: set the secret MLOPS_FEEDBACK_TOKEN to enable it", 503
        )
    if not _authorized(watch.feedback_token):
        return _error("missing or wrong bearer token: send 'Authorization: Bearer <feedback token>'", 401)
    wait_s = watch.feedback_limit.take()
    if wait_s:
        response, status = _error(
            "too many feedback requests for this token; retry after the Retry-After seconds", 429
        )
        response.headers["Retry-After"] = str(wait_s)
        return response, status
    if request.mimetype != "application/json":
        return _error(
            f"unsupported Content-Type {request.mimetype or 'none'!r}; send application/json "
            '{"request_id": ..., "label": ...}',
            415,
        )
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or "request_id" not in body or "label" not in body:
        return _error('send a JSON object {"request_id": "<id /predict returned>", "label": "<class>"}', 400)
    request_id, label = body["request_id"], body["label"]
    if not isinstance(request_id, str) or not monitoring.PREDICTION_ID.match(request_id):
        return _error(
            f"request_id {request_id!r} is not a prediction id (32 hex digits, '-N' for the N-th image "
            "of a batch), as /predict returns in 'request_id' and X-Request-Id",
            422,
        )
    model = current_app.extensions["mlops_bundle"]
    if not isinstance(label, str) or label not in model.classes:
        return _error(f"unknown label {label!r}; the model's classes are: {', '.join(model.classes)}", 422)
    if not watch.request_ids.issued(request_id):
        return _error(
            f"request_id {request_id!r} names no prediction this server made; send an id that /predict "
            "or v2 infer returned (request_id, X-Request-Id or prediction_ids)",
            404,
        )
    now = time.time()
    record = {
        "id": request_id,
        "label": label,
        "t": now,
        "at": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "model": model.name,
    }
    if not watch.feedback.put(record):
        response, status = _error("the feedback queue is full (storage is slow or down); retry later", 503)
        response.headers["Retry-After"] = "30"
        return response, status
    return jsonify(request_id=request_id, label=label, status="accepted"), 202
