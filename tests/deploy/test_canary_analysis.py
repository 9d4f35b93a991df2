"""The canary's statistics: a real /metrics exposition reduced to one version, and the comparison."""

from __future__ import annotations

import pytest

from core.settings import CanarySettings
from deploy.canary import canary_size, check_percent, plan_split
from deploy.canary_analysis import FAIL, PASS, PENDING, Snapshot, compare, parse_metrics
from model_api.metrics import ApiMetrics


def exposition(
    version: str, ok: int, errors: int, latency_s: float, labels: dict[str, int], conf: float
) -> str:
    """The text the real ApiMetrics exports after this traffic (plus another version's noise)."""
    from prometheus_client import generate_latest

    metrics = ApiMetrics(version)
    for status, count in (("200", ok), ("500", errors)):
        for _ in range(count):
            metrics.requests.labels("/predict", "POST", status, version).inc()
            metrics.latency.labels("/predict", version).observe(latency_s)
    metrics.requests.labels("/readyz", "GET", "500", version).inc()  # not a prediction
    metrics.requests.labels("/predict", "POST", "500", "other").inc(50)  # another version's series
    for label, count in labels.items():
        metrics.predictions.labels(label, version).inc(count)
        for _ in range(count):
            metrics.confidence.labels(version).observe(conf)
    return generate_latest(metrics.registry).decode()


def snapshot(ok=200, errors=0, latency_s=0.02, labels=None, conf=0.9) -> Snapshot:
    labels = (
        labels
        if labels is not None
        else {"covid": ok // 3, "normal": ok // 3, "pneumonia": ok - 2 * (ok // 3)}
    )
    return parse_metrics(exposition("7", ok, errors, latency_s, labels, conf), "7")


def test_parse_keeps_only_the_versions_predictions():
    s = snapshot(ok=90, errors=10, latency_s=0.02)
    assert (s.requests, s.errors) == (100, 10)
    assert s.class_shares() == pytest.approx({"covid": 1 / 3, "normal": 1 / 3, "pneumonia": 1 / 3})
    assert s.mean_confidence == pytest.approx(0.9)
    assert 0.01 < s.quantile(0.99) <= 0.025  # inside the bucket holding 0.02 s


LIMITS = CanarySettings(requests=300, min_requests=100)


def test_identical_sides_pass_only_with_the_full_sample():
    assert compare(snapshot(ok=400), snapshot(ok=300), LIMITS).status == PASS
    assert compare(snapshot(ok=400), snapshot(ok=200), LIMITS).status == PENDING
    assert compare(snapshot(ok=400), snapshot(ok=40, errors=40), LIMITS).status == PENDING  # below min


@pytest.mark.parametrize(
    ("canary", "reason"),
    [
        (dict(ok=180, errors=20), "error rate"),
        (dict(ok=200, latency_s=0.7), "p99 latency"),
        (dict(ok=200, labels={"covid": 200}), "class shares"),
        (dict(ok=200, conf=0.6), "mean confidence"),
    ],
)
def test_each_fault_fails_with_its_reason(canary, reason):
    verdict = compare(snapshot(ok=400), snapshot(**canary), LIMITS)
    assert verdict.status == FAIL
    assert any(reason in r for r in verdict.reasons), verdict.reasons
    assert verdict.figures["baseline"]["requests"] == 400


def test_a_small_latency_step_on_fast_requests_is_not_a_fault():
    # 10 ms -> 25 ms is a 2.5x ratio but only 15 ms slower: one histogram bucket, not a regression.
    assert compare(snapshot(ok=400, latency_s=0.008), snapshot(ok=300, latency_s=0.02), LIMITS).status == PASS


def test_the_share_becomes_whole_workers():
    assert canary_size(2, 25) == 1 and canary_size(2, 50) == 2 and canary_size(6, 25) == 2
    assert canary_size(2, 1) == 1  # never zero: a canary with no worker serves nothing
    split = plan_split(2, 25, "pods")  # whole pods: 1 of 3 serves, 33%, not the 25% asked
    assert split == {
        "requested_percent": 25, "unit": "pods", "baseline": 2, "canary": 1, "expected_share": 0.3333,
    }  # fmt: skip


@pytest.mark.parametrize("percent", [0, 100, 150, -5, float("nan")])
def test_a_share_outside_0_100_is_a_usage_error(percent):
    from core.errors import UsageError

    with pytest.raises(UsageError, match="0 < PERCENT < 100"):
        check_percent(percent)


@pytest.mark.parametrize("percent", ["0", "100", "150"])
def test_cli_refuses_a_bad_share_before_anything_runs(cli, percent):
    done = cli("deploy", "--target", "local", "--model", "production:1", "--canary", percent)
    assert done.code == 2 and "0 < PERCENT < 100" in done.err
