"""Label-free accuracy estimate of a window: confidence-based performance estimation (CBPE).

With calibrated probabilities a prediction made with confidence c (its largest class probability) is
right with probability c, so a window's expected accuracy is its mean confidence (NannyML's CBPE for
accuracy). This needs three sums the window query already returns (n, sum and sum of squares of the
confidences), not the NannyML package and its pandas/sklearn stack: the serving-free monitor stays
small, and the statistic is a few lines that a test checks against real accuracy.

Drop test: the live mean confidence against the reference's (the same model on its held-out split,
so a miscalibration common to both cancels), one-sided z-test with both sides' standard errors, and a
practical floor (`monitor.estimate_min_drop`) so a huge window does not alert on a negligible move.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def estimate(
    sums: Mapping[str, float],
    reference_confidences: np.ndarray,
    held_out_accuracy: float | None,
    *,
    alpha: float,
    min_drop: float,
) -> dict[str, Any]:
    """The window's estimated accuracy with its (1 - alpha) interval, and whether it dropped significantly."""
    from scipy.stats import norm

    n = float(sums.get("n") or 0)
    if n < 2:
        note = "fewer than 2 predictions with a confidence"
        return {"judged": False, "n": int(n), "accuracy": None, "interval": None, "note": note}
    mean = sums["sum"] / n
    variance = max(sums["sq_sum"] / n - mean * mean, 0.0) * n / (n - 1)
    se = math.sqrt(variance / n)
    z = float(norm.ppf(1 - alpha / 2))
    ref = np.asarray(reference_confidences, dtype=np.float64)
    ref = ref[~np.isnan(ref)]
    result: dict[str, Any] = {
        "judged": True,
        "n": int(n),
        "accuracy": mean,
        "interval": (max(mean - z * se, 0.0), min(mean + z * se, 1.0)),
        "held_out_accuracy": held_out_accuracy,
        "min_drop": min_drop,
    }
    if ref.size < 2:
        return {**result, "reference": None, "dropped": False, "note": "no reference confidences"}
    ref_mean = float(ref.mean())
    ref_se = float(ref.std(ddof=1)) / math.sqrt(ref.size)
    drop = ref_mean - mean
    p = float(norm.sf(drop / math.sqrt(se * se + ref_se * ref_se))) if se or ref_se else float(drop <= 0)
    return {
        **result,
        "reference": ref_mean,
        "drop": drop,
        "p_value": p,
        "dropped": p < alpha and drop >= min_drop,
    }
