"""Canary analysis by the numbers: one side's /metrics as counters, and canary vs baseline compared.

Both servers label their traffic metrics with the version they serve (model_api/metrics.py), so a
scrape is reduced to the series of one version. Counters are cumulative since a server started:
the analysis subtracts the snapshot taken when the canary began, so both sides are judged on the
same window. Only prediction requests count (the smoke test's and probes' GETs do not).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from core.errors import MlopsError
from core.settings import CanarySettings

PASS, FAIL, PENDING = "pass", "fail", "pending"
PROGRESS_EVERY_S = 5.0  # one progress line on stderr this often while the analysis runs


def _is_prediction(endpoint: str) -> bool:
    """/predict and KServe v2's infer path are predictions; health, /model and /metrics are not."""
    return endpoint == "/predict" or endpoint.endswith("/infer")


@dataclass(frozen=True)
class Snapshot:
    """One side's prediction traffic for one version: counts, latency buckets, classes, confidence."""

    requests: float = 0.0
    errors: float = 0.0  # answered 5xx: the server's fault, not the client's
    latency: dict[float, float] = field(default_factory=dict)  # cumulative count per upper bound
    classes: dict[str, float] = field(default_factory=dict)
    confidence_sum: float = 0.0
    confidence_count: float = 0.0

    def minus(self, earlier: Snapshot) -> Snapshot:
        """The traffic between `earlier` and this snapshot."""

        def sub(now: dict, then: dict) -> dict:
            return {k: v - then.get(k, 0.0) for k, v in now.items()}

        return Snapshot(
            self.requests - earlier.requests,
            self.errors - earlier.errors,
            sub(self.latency, earlier.latency),
            sub(self.classes, earlier.classes),
            self.confidence_sum - earlier.confidence_sum,
            self.confidence_count - earlier.confidence_count,
        )

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def mean_confidence(self) -> float | None:
        return self.confidence_sum / self.confidence_count if self.confidence_count else None

    def class_shares(self) -> dict[str, float]:
        total = sum(self.classes.values())
        return {k: v / total for k, v in sorted(self.classes.items())} if total else {}

    def quantile(self, q: float) -> float | None:
        """Like PromQL's histogram_quantile: linear within the bucket the rank falls in."""
        bounds = sorted(self.latency)
        if not bounds or self.latency[bounds[-1]] <= 0:
            return None
        rank = q * self.latency[bounds[-1]]
        lower, below = 0.0, 0.0
        for bound in bounds:
            count = self.latency[bound]
            if count >= rank:
                if math.isinf(bound):
                    return lower  # beyond the largest finite bucket: its bound is all we know
                return lower + (bound - lower) * ((rank - below) / (count - below) if count > below else 1.0)
            lower, below = bound, count
        return lower


def parse_metrics(text: str, version: str) -> Snapshot:
    """The prediction traffic of VERSION in a Prometheus text exposition."""
    requests_, errors, confidence_sum, confidence_count = 0.0, 0.0, 0.0, 0.0
    latency: dict[float, float] = {}
    classes: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if labels.get("version") != version:
                continue
            name = sample.name
            if name == "mlops_api_requests_total" and _is_prediction(labels.get("endpoint", "")):
                requests_ += sample.value
                errors += sample.value if labels.get("status", "").startswith("5") else 0.0
            elif name == "mlops_api_request_latency_seconds_bucket" and _is_prediction(
                labels.get("endpoint", "")
            ):
                bound = float(labels["le"])
                latency[bound] = latency.get(bound, 0.0) + sample.value
            elif name == "mlops_api_predictions_total":
                classes[labels["label"]] = classes.get(labels["label"], 0.0) + sample.value
            elif name == "mlops_api_prediction_confidence_sum":
                confidence_sum += sample.value
            elif name == "mlops_api_prediction_confidence_count":
                confidence_count += sample.value
    return Snapshot(requests_, errors, latency, classes, confidence_sum, confidence_count)


def scrape(url: str, version: str, timeout_s: float = 10.0) -> Snapshot:
    """GET URL/metrics and reduce it to VERSION's traffic; MlopsError when it cannot be read."""
    try:
        answer = requests.get(f"{url}/metrics", timeout=timeout_s)
        answer.raise_for_status()
    except requests.RequestException as exc:
        raise MlopsError(f"cannot read {url}/metrics: {exc}") from None
    return parse_metrics(answer.text, version)


@dataclass
class Verdict:
    """The comparison of one window: pass, fail or pending, why, and the figures behind it."""

    status: str
    reasons: list[str]
    figures: dict[str, Any]


def _side(s: Snapshot) -> dict[str, Any]:
    p99 = s.quantile(0.99)
    mean = s.mean_confidence
    return {
        "requests": int(s.requests),
        "errors": int(s.errors),
        "error_rate": round(s.error_rate, 4),
        "p99_latency_s": None if p99 is None else round(p99, 4),
        "class_shares": {k: round(v, 4) for k, v in s.class_shares().items()},
        "mean_confidence": None if mean is None else round(mean, 4),
    }


def total_variation(a: dict[str, float], b: dict[str, float]) -> float:
    """Half the L1 distance between two share vectors: 0 identical, 1 disjoint."""
    return 0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b))


def compare(baseline: Snapshot, canary: Snapshot, limits: CanarySettings) -> Verdict:
    """Judge the canary against the baseline over the same window, with the settings' thresholds.

    Fail as soon as both sides have min_requests and a threshold is crossed; pass only when the
    canary has served `limits.requests` with none crossed; pending otherwise.
    """
    figures: dict[str, Any] = {"baseline": _side(baseline), "canary": _side(canary)}
    if min(baseline.requests, canary.requests) < limits.min_requests:
        return Verdict(PENDING, [], figures)
    reasons = []
    increase = canary.error_rate - baseline.error_rate
    figures["error_rate_increase"] = round(increase, 4)
    if increase > limits.max_error_rate_increase:
        reasons.append(
            f"error rate {canary.error_rate:.1%} vs {baseline.error_rate:.1%} on the baseline "
            f"(+{increase:.1%} > {limits.max_error_rate_increase:.1%})"
        )
    base_p99, can_p99 = baseline.quantile(0.99), canary.quantile(0.99)
    if base_p99 is not None and can_p99 is not None:
        ratio = can_p99 / base_p99 if base_p99 > 0 else math.inf
        figures["p99_ratio"] = round(ratio, 3) if math.isfinite(ratio) else None
        if ratio > limits.max_p99_ratio and can_p99 - base_p99 > limits.min_p99_increase_s:
            reasons.append(
                f"p99 latency {can_p99 * 1000:.0f} ms vs {base_p99 * 1000:.0f} ms on the baseline "
                f"(x{ratio:.1f} > x{limits.max_p99_ratio:g})"
            )
    base_shares, can_shares = baseline.class_shares(), canary.class_shares()
    if base_shares and can_shares:
        shift = total_variation(base_shares, can_shares)
        figures["class_share_shift"] = round(shift, 4)
        if shift > limits.max_class_share_shift:
            reasons.append(
                f"predicted class shares moved by {shift:.2f} (total variation > "
                f"{limits.max_class_share_shift:g}): canary {_shares(can_shares)}, "
                f"baseline {_shares(base_shares)}"
            )
    elif base_shares and not can_shares:
        reasons.append("the canary made no prediction at all")
    base_conf, can_conf = baseline.mean_confidence, canary.mean_confidence
    if base_conf is not None and can_conf is not None:
        drop = base_conf - can_conf
        figures["confidence_drop"] = round(drop, 4)
        if drop > limits.max_confidence_drop:
            reasons.append(
                f"mean confidence {can_conf:.3f} vs {base_conf:.3f} on the baseline "
                f"(-{drop:.3f} > {limits.max_confidence_drop:g})"
            )
    if reasons:
        return Verdict(FAIL, reasons, figures)
    if canary.requests >= limits.requests:
        return Verdict(PASS, [], figures)
    return Verdict(PENDING, [], figures)


def _shares(shares: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0%}" for k, v in shares.items())


def analyse(
    read_baseline: Callable[[], Snapshot],
    read_canary: Callable[[], Snapshot],
    limits: CanarySettings,
    say: Callable[[str], None],
) -> Verdict:
    """Read both sides every interval until a verdict, or until duration_s runs out (a fail).

    A side whose /metrics cannot be read fails the canary: nothing is promoted on partial figures.
    """
    started = time.monotonic()
    try:
        base0, can0 = read_baseline(), read_canary()
    except MlopsError as exc:
        return Verdict(FAIL, [str(exc)], {})
    last_said = 0.0
    while True:
        time.sleep(limits.interval_s)
        elapsed = time.monotonic() - started
        try:
            base, can = read_baseline().minus(base0), read_canary().minus(can0)
        except MlopsError as exc:
            return Verdict(FAIL, [str(exc)], {"elapsed_s": round(elapsed, 1)})
        verdict = compare(base, can, limits)
        total = base.requests + can.requests
        share = can.requests / total if total else 0.0
        verdict.figures.update(elapsed_s=round(elapsed, 1), canary_share=round(share, 4))
        if verdict.status == PENDING and elapsed > limits.duration_s:
            verdict.status = FAIL
            verdict.reasons.append(
                f"no verdict after {limits.duration_s:g} s: the canary served {int(can.requests)} of the "
                f"{limits.requests} requests the analysis needs (min_requests {limits.min_requests} per side)"
            )
        if verdict.status != PENDING or elapsed - last_said >= PROGRESS_EVERY_S:
            last_said = elapsed
            say(
                f"{elapsed:5.0f} s: baseline {int(base.requests)} requests ({int(base.errors)} errors), "
                f"canary {int(can.requests)} ({int(can.errors)} errors), canary share {share:.0%}"
            )
        if verdict.status != PENDING:
            return verdict
