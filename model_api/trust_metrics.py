"""`mlops_trust_refusals_total{attempted,reason}`: refusals on the registry's audit log, on /metrics.

A refusal is written by whatever process refused (a deploy that kept the old server, a worker that
would not load a version, a promotion), and that process may be gone; the API that stays up is the
one Prometheus scrapes. So the count is read from the audit log itself at scrape time: every worker
reports the same durable numbers (no per-process counter to sum twice), and a restart resets nothing.
`AuditLog.events` keeps what it has parsed, so a scrape reads only the events appended since the last.
Labels take a fixed set of values (anything else is `other`): the log is outside input.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

ATTEMPTS = ("promote", "approve", "rollback", "deploy", "serve", "canary", "test-model")
# The failing link of a signed chain (registry.chain) or the loader's check (model_api.loading).
REASONS = ("signature", "gate", "provenance", "tests", "approval", "checksum")


def _label(value: Any, allowed: tuple[str, ...]) -> str:
    return value if isinstance(value, str) and value in allowed else "other"


class TrustRefusals(Collector):
    """A Prometheus collector counting `refuse` events of one model's audit log."""

    def __init__(self, audit_log: Any) -> None:
        self.log = audit_log

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(
            "mlops_trust_refusals",
            "Refused decisions on the registry's audit log (promote, deploy, serve, ...), by what was "
            "attempted and the check that failed",
            labels=["attempted", "reason"],
        )

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield self._family()  # registering must not read the log

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = self._family()
        try:
            events = self.log.events()
        except Exception as exc:  # any store's error: a scrape must not fail on it; say it and go on
            log.warning("mlops_trust_refusals: cannot read the audit log: %s", exc)
            return
        counts = Counter(
            (_label(e.get("attempted"), ATTEMPTS), _label(e.get("check"), REASONS))
            for e in events
            if isinstance(e, dict) and e.get("action") == "refuse"
        )
        for (attempted, reason), n in sorted(counts.items()):
            family.add_metric([attempted, reason], n)
        yield family
