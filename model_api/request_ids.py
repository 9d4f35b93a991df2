"""Prediction ids the server can recognise as its own: 16 hex digits of nonce, 16 of HMAC tag.

An id stays 32 lower-case hex digits (`<id>-<i>` for the i-th image of a batch), as before, but
its second half is HMAC-SHA256(secret, nonce and the request's image count), cut to 64 bits. Any
worker, replica or restarted server holding the same secret checks an id sent to POST /feedback
with no shared state and no memory of past requests, so feedback for ids never issued is refused
instead of stored. Only requests that produced predictions get a signed id: the X-Request-Id of
an error or a health probe is a plain random id, which does not verify.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

_ID = re.compile(r"^([0-9a-f]{16})([0-9a-f]{16})(?:-([0-9]{1,4}))?$")
_KEY_LABEL = b"mlops prediction ids v1"


def unsigned_id() -> str:
    """A random request id (32 hex digits) that names no prediction."""
    return secrets.token_hex(16)


def derive_key(secret: str) -> bytes:
    """The HMAC key for SECRET (kept apart from any other use of the same secret)."""
    return hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()


class RequestIds:
    """Issue signed request ids and tell whether a prediction id is one this deployment issued."""

    def __init__(self, key: bytes, max_batch: int) -> None:
        # Keyed once; each tag copies this state (HMAC's key setup was most of a tag's cost).
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)
        self._max_batch = max_batch

    def _tag(self, nonce: str, count: int) -> str:
        mac = self._keyed.copy()
        mac.update(f"{nonce}/{count}".encode())
        return mac.hexdigest()[:16]

    def issue(self, count: int) -> str:
        """A request id for COUNT predictions (their ids: the id itself, or `<id>-0` ... `<id>-<COUNT-1>`)."""
        nonce = secrets.token_hex(8)
        return nonce + self._tag(nonce, count)

    def issued(self, prediction_id: str) -> bool:
        """Whether PREDICTION_ID names a prediction this deployment made (constant time per candidate)."""
        match = _ID.match(prediction_id)
        if match is None:
            return False
        nonce, tag, index = match.groups()
        # A lone id is a one-image request; `<id>-<i>` belongs to a batch of more than i images.
        counts = [1] if index is None else range(max(int(index) + 1, 2), self._max_batch + 1)
        return any(hmac.compare_digest(tag, self._tag(nonce, count)) for count in counts)
