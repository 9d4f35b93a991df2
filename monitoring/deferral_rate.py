"""The window's deferral rate against the version's: is the model unsure more often than on validation?

A version defers (answers "defer to radiologist") below a threshold chosen on its validation split,
where it kept `coverage` of the cases, so it is expected to defer 1 - coverage of them. More
deferrals live mean inputs it is less sure about (a shift) or a mislabelled threshold; the one-sided
exact binomial test asks whether so many deferrals out of the logged predictions are plausible at
the expected rate. That rate is itself measured on `deferral.n` validation images (often none of them
deferred), so the null is its one-sided (1 - alpha) Clopper-Pearson upper bound, not the point
estimate: with 0 of 68 validation cases deferred, a live 1.5 % is no evidence of a change.
"""

from __future__ import annotations

from typing import Any

from registry.manifest import Deferral


def deferral_rate(
    deferral: Deferral | None, deferred: int, n: int, *, alpha: float, min_records: int
) -> dict[str, Any]:
    """The live rate, the expected rate, the test's p-value, and whether it is significantly higher."""
    rate = deferred / n if n else None
    out: dict[str, Any] = {"n": n, "deferred": deferred, "rate": rate, "expected": None, "p_value": None}
    out["split"] = None if deferral is None else deferral.split
    if deferral is None:
        return {**out, "judged": False, "higher": False, "note": "the version has no abstention threshold"}
    expected = 1.0 if not deferral.reached else 1.0 - deferral.coverage
    out["expected"] = expected
    if n < max(min_records, 1):
        note = f"{n} predictions that say whether they deferred < min_records {min_records}"
        return {**out, "judged": False, "higher": False, "note": note}
    from scipy.stats import beta, binom

    # The highest rate the validation split is compatible with (k of n_val deferred).
    n_val = max(int(deferral.n), 0)
    k = min(max(round(expected * n_val), 0), n_val)
    bound = 1.0 if k >= n_val else float(beta.ppf(1 - alpha, k + 1, n_val - k))
    out["expected_upper"] = bound
    # P(X >= deferred) when each prediction defers at that rate.
    p_value = float(binom.sf(deferred - 1, n, min(max(bound, 0.0), 1.0)))
    return {**out, "p_value": p_value, "judged": True, "higher": p_value < alpha, "note": ""}
