"""What train, retrain and train-job print at the end: one line or the JSON summary, also on a failed gate."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

from core.errors import CheckFailed


def print_summary(summary: dict, as_json: bool) -> None:
    """The final line (or the JSON summary) of train / retrain."""
    if as_json:
        keys: tuple[str, ...] = ("ref", "version", "metrics", "gate", "report", "parent", "dataset")
        keys += ("validation", "skipped", "message")
        print(json.dumps({k: summary.get(k) for k in keys}, indent=1, default=str))
        return
    if summary.get("skipped"):
        print(summary["message"])
        return
    gate = "gate passed" if summary["gate"]["passed"] else "gate FAILED"
    print(f"registered {summary['ref']} (accuracy {summary['metrics']['accuracy']:.3f}, {gate})")
    for warning in (summary.get("validation") or {}).get("warnings") or []:
        print(f"data warning: {warning}")
    print(f"report: {summary['report']}")


@contextlib.contextmanager
def json_on_gate_failure(as_json: bool) -> Iterator[None]:
    """With --json, a failed gate still prints its JSON summary (ref null) before exiting 3."""
    try:
        yield
    except CheckFailed as exc:
        if as_json and exc.summary is not None:
            print_summary(exc.summary, as_json=True)
        raise
