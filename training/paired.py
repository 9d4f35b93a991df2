"""Paired comparison of two models on the same labelled images, with stated error rates.

McNemar's exact test on the discordant pairs (images one model gets right and the other wrong) says
whether the accuracies differ at all; a paired bootstrap (the same resampled images for both models)
gives confidence intervals for the accuracy difference and each class's recall difference. The
Wilson interval bounds one model's recall of a class when its support is small.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

TEST_NAME = "mcnemar_exact"
BOOTSTRAP = "paired_bootstrap_percentile"
CHUNK = 250  # resamples drawn at once: bounds memory at CHUNK x n indices for large test sets


def _z(confidence: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(1 - (1 - confidence) / 2))


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (0, 1) when n is 0: nothing is known."""
    if n <= 0:
        return 0.0, 1.0
    z, p = _z(confidence), successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def min_support(floor: float, confidence: float = 0.95) -> int:
    """The fewest images on which a perfect recall's Wilson lower bound reaches FLOOR.

    With fewer, no result can show the class meets its floor: the gate says "too few images to judge".
    """
    n = 1
    while floor > 0 and wilson_interval(n, n, confidence)[0] < floor:
        n += 1
    return n if floor > 0 else 0


def mcnemar(candidate_correct: np.ndarray, baseline_correct: np.ndarray) -> dict[str, Any]:
    """McNemar's exact (binomial) test: two-sided p-value and the discordant counts."""
    from scipy.stats import binomtest

    only_candidate = int(np.sum(candidate_correct & ~baseline_correct))
    only_baseline = int(np.sum(~candidate_correct & baseline_correct))
    discordant = only_candidate + only_baseline
    p = float(binomtest(only_candidate, discordant, 0.5).pvalue) if discordant else 1.0
    return {"test": TEST_NAME, "p_value": p, "candidate_only": only_candidate, "baseline_only": only_baseline}


def _interval(samples: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return None, None
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def compare(
    y_true: Sequence[str],
    candidate: Sequence[str],
    baseline: Sequence[str],
    classes: Sequence[str],
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Candidate minus baseline on the same images: McNemar, and bootstrap intervals of the accuracy
    and per-class recall differences (the intervals are percentile intervals at CONFIDENCE)."""
    truth = np.asarray(list(y_true), dtype=object)
    cand_ok = truth == np.asarray(list(candidate), dtype=object)
    base_ok = truth == np.asarray(list(baseline), dtype=object)
    n = len(truth)
    if n == 0 or len(cand_ok) != n or len(base_ok) != n:
        raise ValueError("compare needs the same, non-empty list of images for both models")
    delta = cand_ok.astype(float) - base_ok.astype(float)
    index = {c: k for k, c in enumerate(classes)}
    label = np.array([index.get(t, -1) for t in truth])

    rng = np.random.default_rng(seed)
    acc: list[np.ndarray] = []
    recall: dict[str, list[np.ndarray]] = {c: [] for c in classes}
    for start in range(0, resamples, CHUNK):
        draw = rng.integers(0, n, (min(CHUNK, resamples - start), n))
        acc.append(delta[draw].mean(axis=1))
        drawn_label = label[draw]
        for c, k in index.items():
            mask = drawn_label == k
            count = mask.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                recall[c].append(np.where(count > 0, (delta[draw] * mask).sum(axis=1) / count, np.nan))
    low, high = _interval(np.concatenate(acc), confidence)
    per_class = {}
    for c, k in index.items():
        support = int(np.sum(label == k))
        estimate = float(delta[label == k].mean()) if support else None
        c_low, c_high = _interval(np.concatenate(recall[c]), confidence)
        per_class[c] = {"difference": estimate, "low": c_low, "high": c_high, "support": support}
    return {
        **mcnemar(cand_ok, base_ok),
        "bootstrap": BOOTSTRAP,
        "confidence": confidence,
        "resamples": resamples,
        "seed": seed,
        "n": n,
        "accuracy": {"difference": float(delta.mean()), "low": low, "high": high, "support": n},
        "recall": per_class,
    }
