"""The canary's statistics: a real /metrics exposition reduced to one version, and the comparison."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.settings import CanarySettings
from deploy.canary import canary_size, check_percent, plan_split
from deploy.canary_analysis import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    PENDING,
    Snapshot,
    analyse,
    compare,
    look_plan,
    parse_metrics,
)
from deploy.canary_stats import (
    class_shares_p_value,
    confidence_p_value,
    error_rate_p_value,
    latency_p_value,
)
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


# The rules' tests, each against numbers worked out by hand (or by exhaustive enumeration).


def test_three_errors_in_the_first_hundred_are_not_a_pull():
    # The case: 3 errors in 100 read as 3% > +2%. With production error-free the p-value is at
    # least P(Bin(100, 0.02) >= 3) = 1 - (0.98^100 + 100*0.02*0.98^99 + 4950*0.02^2*0.98^98) = 0.3233.
    assert error_rate_p_value(3, 100, 0, 200, 0.02) == pytest.approx(0.3233, abs=2e-4)
    verdict = compare(snapshot(ok=400), snapshot(ok=97, errors=3), LIMITS)
    assert verdict.status == PENDING and verdict.looks == 1, verdict  # the first look, taken


def test_a_clear_error_increase_is_significant():
    # 30 errors in 300 against error-free production: P(Bin(300, 0.02) >= 30) is about 1e-12, so only
    # the 1e-5 the search over production's unknown rate adds is left.
    assert error_rate_p_value(30, 300, 0, 600, 0.02) < 2e-5
    assert error_rate_p_value(0, 300, 0, 600, 0.02) == 1.0


def test_the_error_rate_test_pulls_at_most_alpha_of_candidates_at_the_limit():
    # Exhaustive: every (canary, production) count weighed by its binomial chance, with the canary
    # exactly at production's rate + margin (the worst case allowed), for rates from 0 to 0.6.
    from scipy import stats

    n_c, n_b, margin = 12, 24, 0.1
    p = np.array(
        [[error_rate_p_value(x, n_c, y, n_b, margin) for y in range(n_b + 1)] for x in range(n_c + 1)]
    )
    for rate in (0.0, 0.02, 0.1, 0.3, 0.6):
        chance = np.outer(
            stats.binom.pmf(range(n_c + 1), n_c, rate + margin), stats.binom.pmf(range(n_b + 1), n_b, rate)
        )
        for alpha in (0.01, 0.05, 0.2):
            assert (chance * (p <= alpha)).sum() <= alpha, (rate, alpha)


def test_latency_tests_the_share_slower_than_the_limit():
    # 3 of 100 slower than the limit, against at most 1% (the p99): 1 - (0.99^100 + 100*0.01*0.99^99
    # + 4950*0.01^2*0.99^98) = 0.0794.
    assert latency_p_value(3, 100) == pytest.approx(0.0794, abs=2e-4)
    assert latency_p_value(0, 100) == 1.0


def test_class_shares_use_chi_square_but_only_a_large_shift_pulls():
    # Table [[100, 100, 100], [150, 50, 100]]: expected 125, 75, 100 per row; chi2 = 2*25^2/125 +
    # 2*25^2/75 = 26.67 on 2 degrees of freedom, whose tail is exp(-chi2 / 2).
    base, canary = {"a": 100, "b": 100, "c": 100}, {"a": 150, "b": 50, "c": 100}
    assert class_shares_p_value(base, canary) == pytest.approx(math.exp(-80 / 3 / 2), rel=1e-6)
    # Significant, but a total variation of 1/6 is under the 0.25 limit: not a pull.
    verdict = compare(snapshot(ok=300, labels=base), snapshot(ok=300, labels=canary), LIMITS)
    assert verdict.status == PASS, verdict
    assert verdict.figures["class_share_shift"]["estimate"] == pytest.approx(1 / 6, abs=1e-4)


def test_confidence_uses_hoeffdings_bound():
    # Drop 0.3 against a 0.1 limit, n 400 and 200: exp(-2 * 0.2^2 / (1/400 + 1/200)) = exp(-10.667).
    assert confidence_p_value(0.9, 400, 0.6, 200, 0.1) == pytest.approx(math.exp(-32 / 3), rel=1e-6)
    assert confidence_p_value(0.9, 400, 0.85, 200, 0.1) == 1.0


def test_looks_are_planned_from_min_requests_to_requests():
    assert look_plan(LIMITS) == [100, 200, 300]
    assert look_plan(CanarySettings(requests=120, min_requests=50)) == [50, 85, 120]
    assert look_plan(CanarySettings(looks=1)) == [300]


@pytest.mark.parametrize(
    "bad",
    [dict(alpha=0), dict(alpha=1.5), dict(inconclusive_alpha=0.001), dict(looks=0), dict(min_requests=400)],
)
def test_bad_canary_settings_are_a_usage_error(bad):
    from core.errors import UsageError

    with pytest.raises(UsageError, match="canary"):
        look_plan(CanarySettings(**bad))


def test_between_looks_nothing_is_tested():
    # 20 errors in 150 would fail at a look; the first look was taken, the second is at 200.
    faulty = snapshot(ok=130, errors=20)
    assert compare(snapshot(ok=400), faulty, LIMITS, looks=1).status == PENDING
    assert compare(snapshot(ok=400), faulty, LIMITS, looks=0).status == FAIL


def test_over_a_limit_with_suggestive_evidence_is_inconclusive():
    from scipy import stats

    # 12 errors in 300 (4% > +2%) at the last look: at least P(Bin(300, 0.02) >= 12) = 0.019, so not
    # proven at alpha / 12, but under the 0.04 that makes it suggestive.
    exact = stats.binomtest(12, 300, 0.02, alternative="greater").pvalue
    assert exact <= error_rate_p_value(12, 300, 0, 600, 0.02) <= 0.04
    verdict = compare(snapshot(ok=600), snapshot(ok=288, errors=12), LIMITS, looks=2)
    assert verdict.status == INCONCLUSIVE, verdict
    assert "error rate" in verdict.reasons[0] and "not proven" in verdict.reasons[0]


def test_over_a_limit_without_evidence_passes():
    # 7 errors in 300 (2.3% > +2%): P(Bin(300, 0.02) >= 7) is about 0.4, no evidence of a breach.
    assert compare(snapshot(ok=600), snapshot(ok=293, errors=7), LIMITS, looks=2).status == PASS


def test_out_of_time_the_last_look_is_taken_and_too_little_traffic_is_inconclusive():
    verdict = compare(snapshot(ok=400), snapshot(ok=150), LIMITS, looks=1, final=True)
    assert verdict.status == INCONCLUSIVE and "of the 300 requests a pass needs" in verdict.reasons[0]
    assert compare(snapshot(ok=400), snapshot(ok=130, errors=20), LIMITS, looks=1, final=True).status == FAIL
    verdict = compare(snapshot(ok=400), snapshot(ok=30), LIMITS, final=True)
    assert verdict.status == INCONCLUSIVE and "not enough traffic" in verdict.reasons[0]


def test_analyse_ends_inconclusive_when_the_canary_gets_too_little_traffic():
    limits = CanarySettings(requests=300, min_requests=100, interval_s=0.01, duration_s=0.05)
    base, few = snapshot(ok=400), snapshot(ok=60)
    reads = {"base": iter([Snapshot(), *[base] * 1000]), "canary": iter([Snapshot(), *[few] * 1000])}
    verdict = analyse(lambda: next(reads["base"]), lambda: next(reads["canary"]), limits, lambda _: None)
    assert verdict.status == INCONCLUSIVE
    assert verdict.reasons[0] == "no verdict after 0.05 s" and "not enough traffic" in verdict.reasons[1]


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
