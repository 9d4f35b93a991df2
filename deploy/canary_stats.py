"""The canary's one-sided tests: each p-value bounds the chance of a figure this bad from a
candidate that is within its limit (docs/architecture.md, "Canary", has the design).

Each returns the p-value of "the canary is no worse than production by more than the margin";
small means the canary is worse. Counts come from Prometheus counters, so they may be floats;
they are rounded down (fewer bad events: never a pull the counts do not support).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

# Production's unknown error rate: searched on this many points of its 1 - NUISANCE_LEVEL confidence
# interval (Berger & Boos 1994), which adds NUISANCE_LEVEL to the p-value; counts of production
# errors less likely than NEGLIGIBLE are left out of the sum (and their chance added back).
NUISANCE_GRID = 101
NUISANCE_LEVEL = 1e-5
NEGLIGIBLE = 1e-12


def error_rate_p_value(
    canary_errors: float, canary_n: float, base_errors: float, base_n: float, margin: float
) -> float:
    """Exact unconditional p-value of H0: canary error rate <= production's + MARGIN.

    The statistic is the canary's binomial tail against production's observed rate + margin. Its
    null distribution depends on production's true rate (a nuisance), so the p-value is the largest
    chance of a statistic this extreme over the rates a 1 - NUISANCE_LEVEL Clopper-Pearson interval
    allows, plus NUISANCE_LEVEL, at the boundary p_c = p_b + margin (Berger & Boos). Exact:
    P(p <= a) <= a for every production rate, unlike a z-test with 3 errors in 100.
    """
    x_c, n_c, x_b, n_b = (int(v) for v in (canary_errors, canary_n, base_errors, base_n))
    if n_c <= 0 or n_b <= 0 or x_c <= 0:
        return 1.0

    def tail(x: np.ndarray, n: int, rate: np.ndarray) -> np.ndarray:
        """P(Bin(n, rate) >= x)."""
        return stats.binom.sf(x - 1, n, np.minimum(rate, 1.0))

    observed = float(tail(np.array(x_c), n_c, np.array(x_b / n_b + margin)))
    interval = stats.binomtest(x_b, n_b).proportion_ci(1 - NUISANCE_LEVEL, method="exact")
    low, high = interval.low, min(interval.high, 1.0 - margin)
    if low > high:  # production fails more often than 1 - margin: no canary can be worse by margin
        return 1.0
    rates = np.linspace(low, high, NUISANCE_GRID)
    # Production counts that matter for these rates; the rest weigh < NEGLIGIBLE each side.
    first_y = int(stats.binom.ppf(NEGLIGIBLE, n_b, low))
    last_y = int(stats.binom.isf(NEGLIGIBLE, n_b, high))
    ys = np.arange(first_y, last_y + 1)
    # For each production count y, the smallest canary count whose statistic is as extreme.
    counts = np.arange(n_c + 2)
    extreme = tail(counts[None, :], n_c, ys[:, None] / n_b + margin) <= observed * (1 + 1e-9)
    smallest = extreme.argmax(axis=1)  # the last count, n_c + 1, has tail 0: always extreme
    weights = stats.binom.pmf(ys[None, :], n_b, rates[:, None])
    chance = (weights * tail(smallest[None, :], n_c, rates[:, None] + margin)).sum(axis=1)
    return float(min(1.0, chance.max() + 2 * NEGLIGIBLE + NUISANCE_LEVEL))


def latency_p_value(canary_above: float, canary_n: float, share: float = 0.01) -> float:
    """Exact binomial p-value of H0: at most SHARE of the canary's requests are slower than the
    limit, i.e. its p99 (SHARE 0.01) is within it; CANARY_ABOVE requests were slower."""
    above, n = int(canary_above), int(canary_n)
    if n <= 0 or above <= 0:
        return 1.0
    return float(stats.binom.sf(above - 1, n, share))


def class_shares_p_value(base: dict[str, float], canary: dict[str, float]) -> float:
    """Chi-square test of homogeneity: p-value of "both sides predict the classes in the same shares"."""
    labels = sorted(k for k in set(base) | set(canary) if base.get(k, 0) + canary.get(k, 0) > 0)
    table = np.array([[int(side.get(k, 0)) for k in labels] for side in (base, canary)])
    if len(labels) < 2 or (table.sum(axis=1) == 0).any():
        return 1.0
    return float(stats.chi2_contingency(table).pvalue)


def confidence_p_value(
    base_mean: float, base_n: float, canary_mean: float, canary_n: float, margin: float
) -> float:
    """Hoeffding p-value of H0: production's mean confidence minus the canary's <= MARGIN.

    Confidences lie in [0, 1], so the bound holds for any distribution (no normality, no variance
    estimate from coarse histogram buckets): P(drop - true drop >= t) <= exp(-2 t^2 / (1/n_b + 1/n_c)).
    """
    if base_n < 1 or canary_n < 1:
        return 1.0
    excess = (base_mean - canary_mean) - margin
    if excess <= 0:
        return 1.0
    return float(min(1.0, math.exp(-2 * excess**2 / (1 / int(base_n) + 1 / int(canary_n)))))
