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

from core.errors import MlopsError, UsageError
from core.settings import CanarySettings
from deploy.canary_stats import (
    class_shares_p_value,
    confidence_p_value,
    error_rate_p_value,
    latency_p_value,
)

PASS, FAIL, INCONCLUSIVE, PENDING = "pass", "fail", "inconclusive", "pending"
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
    """The comparison of one window: pass, fail, inconclusive or pending, why, and the figures behind it.

    LOOKS: how many of the planned looks (look_plan) this and earlier comparisons have taken.
    """

    status: str
    reasons: list[str]
    figures: dict[str, Any]
    looks: int = 0


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


def look_plan(limits: CanarySettings) -> list[int]:
    """The canary request counts at which the analysis looks: min_requests to requests, evenly."""
    if not 0 < limits.alpha < 1:
        raise UsageError(f"canary.alpha {limits.alpha:g}: give the false-pull budget as 0 < alpha < 1")
    if not limits.alpha <= limits.inconclusive_alpha < 1:
        raise UsageError(
            f"canary.inconclusive_alpha {limits.inconclusive_alpha:g}: give alpha <= inconclusive_alpha < 1"
        )
    if limits.looks < 1 or not 0 < limits.min_requests <= limits.requests:
        raise UsageError(
            f"canary.looks {limits.looks}, min_requests {limits.min_requests}, requests {limits.requests}: "
            "need looks >= 1 and 0 < min_requests <= requests"
        )
    k = limits.looks
    if k == 1:
        return [limits.requests]
    step = (limits.requests - limits.min_requests) / (k - 1)
    return [round(limits.min_requests + i * step) for i in range(k)]


def _above(s: Snapshot, limit_s: float) -> float:
    """Requests slower than LIMIT_S, interpolated within its bucket as the quantile is."""
    bounds = sorted(s.latency)
    total = s.latency[bounds[-1]] if bounds else 0.0
    lower, below = 0.0, 0.0
    for bound in bounds:
        if math.isinf(bound):
            return total - below  # beyond the largest finite bucket: all we know is they are above it
        if bound >= limit_s:
            inside = s.latency[bound] - below
            return total - below - inside * (limit_s - lower) / (bound - lower)
        lower, below = bound, s.latency[bound]
    return 0.0


def compare(
    baseline: Snapshot, canary: Snapshot, limits: CanarySettings, looks: int = 0, final: bool = False
) -> Verdict:
    """Judge the canary against the baseline over the same window, at the planned looks.

    LOOKS: the looks earlier comparisons took. A look is due when the canary has served the next
    planned count (look_plan), or at once when FINAL (time is up). Each look tests every rule at
    alpha / (rules x looks) (Bonferroni: a look that covers skipped ones spends their share too),
    so an identical candidate is pulled in at most alpha of runs. Fail: a rule's test rejects.
    At the last look, inconclusive when a rule's estimate is over its limit with p <=
    inconclusive_alpha (suggestive, not proven), else pass. Pending otherwise.
    """
    plan = look_plan(limits)
    figures: dict[str, Any] = {"baseline": _side(baseline), "canary": _side(canary)}
    due = len(plan) if final else sum(1 for n in plan if canary.requests >= n)
    if due <= looks or min(baseline.requests, canary.requests) < limits.min_requests:
        if final:
            reason = (
                f"not enough traffic to judge: the canary served {int(canary.requests)} of the "
                f"{limits.requests} requests the analysis needs (min_requests {limits.min_requests} per side)"
            )
            return Verdict(INCONCLUSIVE, [reason], figures, looks)
        return Verdict(PENDING, [], figures, looks)
    level = limits.alpha * (due - looks) / (len(RULES) * len(plan))
    figures.update(look=f"{due} of {len(plan)}", alpha_per_rule=round(level, 6))
    failed, over = [], []
    for rule in RULES:
        result = rule(baseline, canary, limits)
        if result is None:
            continue
        name, estimate, p_value, is_over, text = result
        figures[name] = {"estimate": round(estimate, 4), "p_value": round(p_value, 6)}
        if p_value <= level:
            failed.append(f"{text} (p={p_value:.2g} <= {level:.2g})")
        elif is_over and p_value <= limits.inconclusive_alpha:
            over.append(
                f"{text}: suggestive, not proven (p={p_value:.2g}: <= {limits.inconclusive_alpha:g} "
                f"but > {level:.2g})"
            )
    if baseline.class_shares() and not canary.class_shares():
        failed.append("the canary made no prediction at all")
    if failed:
        return Verdict(FAIL, failed, figures, due)
    if due < len(plan):
        return Verdict(PENDING, [], figures, due)
    if over:
        return Verdict(INCONCLUSIVE, over, figures, due)
    if final and canary.requests < limits.requests:
        reason = f"the canary served {int(canary.requests)} of the {limits.requests} requests a pass needs"
        return Verdict(INCONCLUSIVE, [reason], figures, due)
    return Verdict(PASS, [], figures, due)


Rule = tuple[str, float, float, bool, str]  # figure name, estimate, p-value, over the limit, why


def _error_rule(baseline: Snapshot, canary: Snapshot, limits: CanarySettings) -> Rule:
    increase = canary.error_rate - baseline.error_rate
    margin = limits.max_error_rate_increase
    p = error_rate_p_value(canary.errors, canary.requests, baseline.errors, baseline.requests, margin)
    text = (
        f"error rate {canary.error_rate:.1%} vs {baseline.error_rate:.1%} on the baseline "
        f"(+{increase:.1%}, limit +{margin:.1%})"
    )
    return "error_rate_increase", increase, p, increase > margin, text


def _latency_rule(baseline: Snapshot, canary: Snapshot, limits: CanarySettings) -> Rule | None:
    base_p99, can_p99 = baseline.quantile(0.99), canary.quantile(0.99)
    if base_p99 is None or can_p99 is None:
        return None
    limit_s = max(base_p99 * limits.max_p99_ratio, base_p99 + limits.min_p99_increase_s)
    slower = _above(canary, limit_s)
    p = latency_p_value(slower, canary.latency[max(canary.latency)])
    text = (
        f"p99 latency {can_p99 * 1000:.0f} ms vs {base_p99 * 1000:.0f} ms on the baseline "
        f"(limit {limit_s * 1000:.0f} ms: x{limits.max_p99_ratio:g} and +{limits.min_p99_increase_s:g} s; "
        f"{slower:.0f} canary requests slower)"
    )
    return "p99_ratio", can_p99 / base_p99 if base_p99 > 0 else math.inf, p, can_p99 > limit_s, text


def _class_rule(baseline: Snapshot, canary: Snapshot, limits: CanarySettings) -> Rule | None:
    base_shares, can_shares = baseline.class_shares(), canary.class_shares()
    if not base_shares or not can_shares:
        return None
    shift = total_variation(base_shares, can_shares)
    # A large sample makes a tiny shift significant: only a shift over the limit may pull.
    p = (
        class_shares_p_value(baseline.classes, canary.classes)
        if shift > limits.max_class_share_shift
        else 1.0
    )
    text = (
        f"predicted class shares moved by {shift:.2f} (total variation, limit "
        f"{limits.max_class_share_shift:g}): canary {_shares(can_shares)}, baseline {_shares(base_shares)}"
    )
    return "class_share_shift", shift, p, shift > limits.max_class_share_shift, text


def _confidence_rule(baseline: Snapshot, canary: Snapshot, limits: CanarySettings) -> Rule | None:
    base_conf, can_conf = baseline.mean_confidence, canary.mean_confidence
    if base_conf is None or can_conf is None:
        return None
    drop, margin = base_conf - can_conf, limits.max_confidence_drop
    p = confidence_p_value(base_conf, baseline.confidence_count, can_conf, canary.confidence_count, margin)
    text = (
        f"mean confidence {can_conf:.3f} vs {base_conf:.3f} on the baseline (-{drop:.3f}, limit -{margin:g})"
    )
    return "confidence_drop", drop, p, drop > margin, text


RULES = (_error_rule, _latency_rule, _class_rule, _confidence_rule)


def _shares(shares: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0%}" for k, v in shares.items())


def analyse(
    read_baseline: Callable[[], Snapshot],
    read_canary: Callable[[], Snapshot],
    limits: CanarySettings,
    say: Callable[[str], None],
) -> Verdict:
    """Read both sides every interval until a verdict; when duration_s runs out, a last look.

    Pending: the canary keeps its slice. A side whose /metrics cannot be read fails the canary:
    nothing is promoted on partial figures.
    """
    look_plan(limits)  # bad [canary] settings: a usage error before anything is read
    started = time.monotonic()
    try:
        base0, can0 = read_baseline(), read_canary()
    except MlopsError as exc:
        return Verdict(FAIL, [str(exc)], {})
    last_said, looks = 0.0, 0
    while True:
        time.sleep(limits.interval_s)
        elapsed = time.monotonic() - started
        try:
            base, can = read_baseline().minus(base0), read_canary().minus(can0)
        except MlopsError as exc:
            return Verdict(FAIL, [str(exc)], {"elapsed_s": round(elapsed, 1)})
        out_of_time = elapsed > limits.duration_s
        verdict = compare(base, can, limits, looks, final=out_of_time)
        looks = verdict.looks
        total = base.requests + can.requests
        share = can.requests / total if total else 0.0
        verdict.figures.update(elapsed_s=round(elapsed, 1), canary_share=round(share, 4))
        if out_of_time and verdict.status == INCONCLUSIVE:
            verdict.reasons.insert(0, f"no verdict after {limits.duration_s:g} s")
        if verdict.status != PENDING or elapsed - last_said >= PROGRESS_EVERY_S:
            last_said = elapsed
            say(
                f"{elapsed:5.0f} s: baseline {int(base.requests)} requests ({int(base.errors)} errors), "
                f"canary {int(can.requests)} ({int(can.errors)} errors), canary share {share:.0%}"
            )
        if verdict.status != PENDING:
            return verdict
