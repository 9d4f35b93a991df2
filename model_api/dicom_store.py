"""DICOM results in the store's monitoring area, beside the prediction log, for a bounded retention.

    monitoring/<model>/dicom-results/<YYYY-MM-DD>/<study>/<series>/<sop>.dcm

Only results (SR, saliency SC) are kept, never the input pixels. The UIDs come from requests
(WADO-RS paths) or from received files: each is checked against the UID grammar (PS3.5 9.1) before
it becomes part of a key, so no name outside that grammar ever reaches the store.
"""

from __future__ import annotations

import contextlib
import re
import time
from datetime import UTC, datetime

from core.errors import MlopsError
from core.safe_paths import check_name
from registry.store import ObjectExists, Store

AREA = "monitoring"
KIND = "dicom-results"
# PS3.5 9.1: components of digits without leading zeros, separated by single dots, 64 characters at most.
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
MAX_UID = 64


class BadUid(MlopsError):
    """A UID that is not a DICOM UID (digits and dots, at most 64 characters)."""


def check_uid(value: str, what: str) -> str:
    """VALUE when it is a valid DICOM UID; BadUid naming WHAT otherwise."""
    if not value or len(value) > MAX_UID or not _UID.match(value):
        shown = repr(value)[:80]
        raise BadUid(
            f"{what} {shown} is not a DICOM UID: use digits and single dots, no leading zeros, "
            f"at most {MAX_UID} characters (e.g. 1.2.840.10008.5.1.4.1.1.1)"
        )
    return value


def _day(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


def prefix(model: str) -> str:
    """The folder of one model's DICOM results."""
    return check_name(f"{AREA}/{model}/{KIND}", "model name") + "/"


def result_key(model: str, study: str, series: str, sop: str, t: float) -> str:
    """Where one result instance is kept."""
    uids = [
        check_uid(study, "study UID"),
        check_uid(series, "series UID"),
        check_uid(sop, "SOP instance UID"),
    ]
    return check_name(f"{prefix(model)}{_day(t)}/{'/'.join(uids)}.dcm", "result key")


class ResultStore:
    """Write and find a model's DICOM results; anything older than the retention is gone."""

    def __init__(self, store: Store, model: str, retention_days: float) -> None:
        self.store = store
        self.model = model
        self.retention_s = retention_days * 86400.0
        self._last_prune = 0.0

    def put(self, study: str, series: str, sop: str, data: bytes, t: float | None = None) -> str:
        """Keep one result (create-only: its UIDs derive from source and model, a repeat is the same)."""
        t = time.time() if t is None else t
        key = result_key(self.model, study, series, sop, t)
        with contextlib.suppress(ObjectExists):
            self.store.write(key, data, create_only=True)
        if t - self._last_prune > 3600:  # at most hourly per process: a listing of a few day folders
            self._last_prune = t
            self.prune(t)
        return key

    def days(self, now: float) -> list[str]:
        """The day folders still within the retention, newest first."""
        oldest = _day(now - self.retention_s)
        found = [d.rstrip("/").rsplit("/", 1)[-1] for d in self.store.children(prefix(self.model))]
        # Retention in whole days: a result stays retrievable through the day it expires in.
        return sorted((d for d in found if d >= oldest), reverse=True)

    def get(self, study: str, series: str, sop: str, now: float | None = None) -> bytes | None:
        """The result with these UIDs, or None when there is none (or it has expired)."""
        now = time.time() if now is None else now
        uids = "/".join(
            [
                check_uid(study, "study UID"),
                check_uid(series, "series UID"),
                check_uid(sop, "SOP instance UID"),
            ]
        )
        for day in self.days(now):
            data = self.store.read(f"{prefix(self.model)}{day}/{uids}.dcm")
            if data is not None:
                return data
        return None

    def prune(self, now: float) -> int:
        """Delete the day folders older than the retention; how many objects went."""
        cutoff = _day(now - self.retention_s)
        gone = 0
        for child in self.store.children(prefix(self.model)):
            day = child.rstrip("/").rsplit("/", 1)[-1]
            if day < cutoff:
                for key in self.store.list(f"{prefix(self.model)}{day}/"):
                    self.store.delete(key)
                    gone += 1
        return gone
