"""Drift of live traffic against a reference profile: PSI for size, a two-sample test for significance.

Per feature, PSI (core.image_stats.psi) says how much the distribution moved, and a two-sample test
from scipy.stats says whether the move is more than sampling noise: Kolmogorov-Smirnov for numbers
(image size, intensity mean and spread, confidence), chi-square for categories (format, predicted
class). A feature drifts when both cross their thresholds, so a large window does not flag tiny but
"significant" moves, and a small window does not flag a noisy PSI. The pooled intensity histogram
has no independent samples to test (pixels of one image are correlated): PSI alone judges it.

PSI saturates (a few empty bins send it past 8 for any large move) and a p-value only says "not
noise", so each row also carries effect sizes that keep growing with the move: for numbers the
Wasserstein (earth mover's) distance in reference standard deviations, and for every feature the
share of mass moved (total variation distance over the same bins or categories, 0 to 1).

The live side arrives as distinct values with counts (monitoring/sql/window_numeric.sql): a window of
millions of records is a few thousand weighted values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from core.image_stats import binned_shares, psi_categories, psi_shares

INPUT_NUMERIC = ("width", "height", "mean", "std")


def _clean(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values[~np.isnan(values)]


_EXPAND_MAX = 200_000  # up to this many live records the exact scipy test runs on the values themselves


def _ks(reference: np.ndarray, live: np.ndarray, weights: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov p-value, LIVE given as distinct values with counts."""
    from scipy.stats import ks_2samp, kstwo

    total = float(weights.sum())
    if total <= _EXPAND_MAX:
        return float(ks_2samp(reference, np.repeat(live, weights.astype(np.int64))).pvalue)
    # Large windows: the statistic from both empirical CDFs, the p-value from its asymptotic law (as
    # ks_2samp's method="asymp"); with n_ref << n_live the effective size is about n_ref anyway.
    points = np.union1d(reference, live)
    ref_cdf = np.searchsorted(np.sort(reference), points, side="right") / reference.size
    order = np.argsort(live)
    live_cdf = np.cumsum(weights[order])[np.searchsorted(live[order], points, side="right") - 1] / total
    live_cdf[np.searchsorted(live[order], points, side="right") == 0] = 0.0
    statistic = float(np.max(np.abs(ref_cdf - live_cdf)))
    effective = reference.size * total / (reference.size + total)
    return float(kstwo.sf(statistic, round(effective)))


def _wasserstein_sd(reference: np.ndarray, live: np.ndarray, weights: np.ndarray) -> float | None:
    """Earth mover's distance between the two distributions, in reference standard deviations."""
    from scipy.stats import wasserstein_distance

    spread = float(reference.std())
    if spread == 0:
        return None  # a constant reference (one image size): the share of mass moved says it
    return float(wasserstein_distance(reference, live, v_weights=weights)) / spread


def _moved(reference: np.ndarray, live: np.ndarray) -> float:
    """Share of mass moved: total variation distance between two share vectors over the same bins."""
    return float(0.5 * np.abs(np.asarray(reference) - np.asarray(live)).sum())


def _chi2(reference: Mapping[str, float], ref_n: int, live: Mapping[str, float], live_n: int) -> float:
    from scipy.stats import chi2_contingency

    keys = sorted(set(reference) | set(live))
    table = np.array(
        [[reference.get(k, 0.0) * ref_n for k in keys], [live.get(k, 0.0) * live_n for k in keys]]
    )
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or np.round(table).sum(axis=1).min() == 0:  # one category, or an empty side
        return 1.0  # one category on both sides
    return float(chi2_contingency(np.round(table)).pvalue)


def _verdict(psi_value: float, p_value: float | None, psi_threshold: float, alpha: float) -> bool:
    if math.isnan(psi_value):
        return False
    return psi_value >= psi_threshold and (p_value is None or p_value < alpha)


def _numeric(
    name: str,
    group: str,
    ref: np.ndarray,
    live: np.ndarray,
    weights: np.ndarray | None,
    thresholds: Mapping[str, float],
):
    live = np.asarray(live, dtype=np.float64)
    weights = np.ones_like(live) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = ~np.isnan(live)
    ref, live, weights = _clean(ref), live[keep], weights[keep]
    row: dict[str, Any] = {"feature": name, "group": group, "test": "ks", "n_reference": int(ref.size)}
    row["n_live"] = int(weights.sum())
    if ref.size == 0 or live.size == 0:
        empty = {"psi": None, "p_value": None, "moved": None, "wasserstein_sd": None}
        return {**row, **empty, "drifted": False, "note": "no values to compare"}
    ref_shares, live_shares = binned_shares(ref, live, live_weights=weights) or (np.ones(1), np.ones(1))
    value, p = psi_shares(ref_shares, live_shares), _ks(ref, live, weights)
    return {
        **row,
        "psi": round(value, 4),
        "p_value": p,
        "wasserstein_sd": _wasserstein_sd(ref, live, weights),
        "moved": round(_moved(ref_shares, live_shares), 4),
        "reference_mean": float(ref.mean()),
        "live_mean": float(np.average(live, weights=weights)),
        "drifted": _verdict(value, p, thresholds["psi"], thresholds["p_value"]),
    }


def _categorical(
    name: str,
    group: str,
    ref: Mapping[str, float],
    ref_n: int,
    live: Mapping[str, float],
    live_n: int,
    thresholds: Mapping[str, float],
) -> dict[str, Any]:
    value, p = psi_categories(ref, live), _chi2(ref, ref_n, live, live_n)
    keys = sorted(set(ref) | set(live))
    moved = _moved(np.array([ref.get(k, 0.0) for k in keys]), np.array([live.get(k, 0.0) for k in keys]))
    return {
        "feature": name,
        "group": group,
        "test": "chi2",
        "n_reference": ref_n,
        "n_live": live_n,
        "psi": round(value, 4),
        "p_value": p,
        "wasserstein_sd": None,
        "moved": round(moved, 4),
        "reference": dict(ref),
        "live": dict(live),
        "drifted": _verdict(value, p, thresholds["psi"], thresholds["p_value"]),
    }


def compare_profiles(
    reference: Mapping[str, Any], live: Mapping[str, Any], psi_threshold: float, p_value: float
) -> list[dict[str, Any]]:
    """One row per feature: PSI, the test's p-value, both sides' summary, and whether it drifted."""
    thresholds = {"psi": psi_threshold, "p_value": p_value}
    rows: list[dict[str, Any]] = []
    ref_f, live_f, live_w = reference["features"], live["features"], live.get("weights") or {}
    for name in INPUT_NUMERIC:
        rows.append(
            _numeric(name, "input", ref_f.get(name, []), live_f.get(name, []), live_w.get(name), thresholds)
        )
    ref_n, live_n = int(reference["n"]), int(live["n"])
    rows.append(
        _categorical(
            "format",
            "input",
            reference.get("formats") or {},
            ref_n,
            live.get("formats") or {},
            live_n,
            thresholds,
        )
    )
    hist_ref, hist_live = np.asarray(reference["intensity_hist"]), np.asarray(live["intensity_hist"])
    hist_psi = (
        psi_shares(hist_ref, hist_live) if hist_ref.size and hist_ref.size == hist_live.size else math.nan
    )
    rows.append(
        {
            "feature": "intensity_hist",
            "group": "input",
            "test": None,
            "n_reference": ref_n,
            "n_live": live_n,
            "psi": None if math.isnan(hist_psi) else round(hist_psi, 4),
            "p_value": None,
            "wasserstein_sd": None,
            "moved": None if math.isnan(hist_psi) else round(_moved(hist_ref, hist_live), 4),
            "reference": [round(float(v), 5) for v in hist_ref],
            "live": [round(float(v), 5) for v in hist_live],
            "drifted": _verdict(hist_psi, None, psi_threshold, p_value),
        }
    )
    rows.append(
        _categorical(
            "class_shares",
            "prediction",
            reference.get("class_shares") or {},
            ref_n,
            live.get("class_shares") or {},
            live_n,
            thresholds,
        )
    )
    rows.append(
        _numeric(
            "confidence",
            "prediction",
            ref_f.get("confidence", []),
            live_f.get("confidence", []),
            live_w.get("confidence"),
            thresholds,
        )
    )
    return rows


def drifted_features(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names of the features that drifted."""
    return [row["feature"] for row in rows if row["drifted"]]
