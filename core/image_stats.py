"""How an image and a set of predictions are described everywhere: the API's prediction log, a version's
reference profile, `mlops monitor`, and dataset checks before training.

numpy only: the serving image and the monitor import it. Pixel statistics are taken on the preprocessed
tensor (the output of `core.preprocessing.preprocess_image`, float in [0, 1]), which is what the model
sees, by `core.preprocessing.pixel_statistics` inside the TensorFlow graph (the API pays no Python per
pixel); format and size come from the encoded image's header (PIL's `Image.format` and `Image.size`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

HIST_BINS = 8  # intensity histogram over [0, 1]: small enough to log with every prediction
NUMERIC_FEATURES = ("width", "height", "mean", "std")  # per-image numbers compared by `mlops monitor`
PSI_BINS = 10  # reference deciles
_EPS = 1e-4  # a share of zero would make PSI infinite; this caps one empty bin's contribution
_DECIMALS = 5


def describe_pixels(row: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """One image's intensity statistics from its row of `core.preprocessing.pixel_statistics`."""
    values = [round(float(v), _DECIMALS) for v in row]
    return {"mean": values[0], "std": values[1], "hist": values[2 : 2 + HIST_BINS]}


def describe_image(
    row: Sequence[float] | np.ndarray, *, fmt: str | None, width: int | None, height: int | None
) -> dict[str, Any]:
    """One image's statistics: header format and size (None where unknown), then its pixel statistics."""
    return {"format": fmt, "width": width, "height": height, **describe_pixels(row)}


def confidence(probabilities: Sequence[float] | np.ndarray) -> float:
    """The model's confidence in its answer: the largest class probability."""
    return round(float(np.max(probabilities)), _DECIMALS)


def shares(values: Iterable[Any], categories: Sequence[Any] = ()) -> dict[str, float]:
    """Each value's share of the total, listing CATEGORIES first (with 0.0 where absent)."""
    counts = Counter("none" if v is None else str(v) for v in values)
    total = sum(counts.values())
    keys = [str(c) for c in categories] + sorted(k for k in counts if k not in {str(c) for c in categories})
    return {k: (counts.get(k, 0) / total if total else 0.0) for k in keys}


def build_profile(
    inputs: Sequence[Mapping[str, Any]],
    labels: Sequence[str] | None = None,
    confidences: Sequence[float] | None = None,
    classes: Sequence[str] = (),
) -> dict[str, Any]:
    """The statistics of a set of images (and of the predictions on them, when given), as numpy arrays.

    The same function profiles a version's held-out split at registration and a window of live
    traffic in `mlops monitor`, so the two are comparable feature by feature.
    """
    features = {
        name: np.array([as_number(item.get(name)) for item in inputs], dtype=np.float64)
        for name in NUMERIC_FEATURES
    }
    hists = np.array([item.get("hist") or [np.nan] * HIST_BINS for item in inputs], dtype=np.float64)
    formats = [item.get("format") for item in inputs]
    return profile_from_columns(features, formats, hists, labels, confidences, classes)


def profile_from_columns(
    features: Mapping[str, np.ndarray],
    formats: Sequence[str | None],
    hists: np.ndarray,
    labels: Sequence[str] | None = None,
    confidences: Sequence[float] | np.ndarray | None = None,
    classes: Sequence[str] = (),
) -> dict[str, Any]:
    """build_profile from columns (one array per NUMERIC_FEATURES name, hists [n, HIST_BINS]): for
    a million records, columns take a tenth of the memory of one dict per image."""
    profile: dict[str, Any] = {
        "n": len(formats),
        "features": {name: np.asarray(features[name], dtype=np.float64) for name in NUMERIC_FEATURES},
        "formats": shares(formats),
        "intensity_hist": _mean_rows(np.asarray(hists, dtype=np.float64).reshape(-1, HIST_BINS)),
    }
    if labels is not None:
        profile["class_shares"] = shares(labels, classes)
    if confidences is not None:
        values = np.asarray(confidences, dtype=np.float64)
        profile["features"]["confidence"] = values
        profile["confidence_mean"] = float(values.mean()) if values.size else None
    return profile


def profile_to_json(profile: Mapping[str, Any]) -> dict[str, Any]:
    """A profile with its arrays as lists (NaN as None), ready for json.dumps."""

    def plain(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return [None if np.isnan(v) else round(float(v), _DECIMALS) for v in value.reshape(-1)]
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {"schema": 1, **plain(profile)}


def profile_from_json(data: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of profile_to_json: feature lists back to float arrays (None as NaN)."""
    profile = dict(data)
    profile["features"] = {
        name: np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        for name, values in (data.get("features") or {}).items()
    }
    profile["intensity_hist"] = np.asarray(data.get("intensity_hist") or [], dtype=np.float64)
    return profile


def psi(
    reference: np.ndarray, live: np.ndarray, bins: int = PSI_BINS, live_weights: np.ndarray | None = None
) -> float:
    """Population stability index of LIVE against REFERENCE for a numeric feature (NaNs ignored).

    Bins are the reference's quantiles, so each holds about 1/bins of it; a feature with few
    distinct reference values (image sizes) is binned by value, with one more bin for the rest.
    LIVE_WEIGHTS (one count per live value) lets a window's value counts stand for its records.
    """
    shares = binned_shares(reference, live, bins, live_weights)
    return float("nan") if shares is None else psi_shares(*shares)


def binned_shares(
    reference: np.ndarray, live: np.ndarray, bins: int = PSI_BINS, live_weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Both sides' shares over PSI's bins (None when a side has no values)."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(live, dtype=np.float64)
    weights = np.ones_like(cur) if live_weights is None else np.asarray(live_weights, dtype=np.float64)
    ref, keep = ref[~np.isnan(ref)], ~np.isnan(cur)
    cur, weights = cur[keep], weights[keep]
    if ref.size == 0 or cur.size == 0 or weights.sum() <= 0:
        return None
    values = np.unique(ref)
    if values.size <= bins:
        ref_counts = _value_counts(ref, values)
        cur_counts = _value_counts(cur, values, weights)
    else:
        edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
        ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1)
        cur_counts = np.bincount(
            np.searchsorted(edges, cur, side="right"), weights=weights, minlength=edges.size + 1
        )
    return ref_counts / ref.size, cur_counts / weights.sum()


def psi_shares(reference: Sequence[float] | np.ndarray, live: Sequence[float] | np.ndarray) -> float:
    """Population stability index between two share vectors over the same bins or categories."""
    ref = np.clip(np.asarray(reference, dtype=np.float64), _EPS, None)
    cur = np.clip(np.asarray(live, dtype=np.float64), _EPS, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def psi_categories(reference: Mapping[str, float], live: Mapping[str, float]) -> float:
    """Population stability index between two {category: share} maps (a category missing on one side: 0)."""
    keys = sorted(set(reference) | set(live))
    return psi_shares([reference.get(k, 0.0) for k in keys], [live.get(k, 0.0) for k in keys])


def _value_counts(data: np.ndarray, values: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Counts of each of VALUES in DATA (each counted WEIGHTS times), plus a last count for the rest."""
    weights = np.ones_like(data, dtype=np.float64) if weights is None else weights
    index = np.searchsorted(values, data)
    known = (index < values.size) & (values[np.minimum(index, values.size - 1)] == data)
    counts = np.bincount(index[known], weights=weights[known], minlength=values.size)
    return np.append(counts, weights[~known].sum())


def _mean_rows(rows: np.ndarray) -> np.ndarray:
    rows = rows[~np.isnan(rows).any(axis=1)] if rows.size else rows
    return rows.mean(axis=0) if rows.size else np.zeros(HIST_BINS)


def as_number(value: Any) -> float:
    """VALUE as a float when it is a number (not a bool), else NaN."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else np.nan
