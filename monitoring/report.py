"""The monitoring report: one self-contained HTML file (plots inlined), reference against live."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np

from core.templates import render
from monitoring.check import CheckResult


def _png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values[~np.isnan(values)]


def _numeric_plot(
    name: str, reference: np.ndarray, live: np.ndarray, weights: np.ndarray | None = None
) -> str | None:
    import matplotlib.pyplot as plt

    live = np.asarray(live, dtype=np.float64)
    weights = np.ones_like(live) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = ~np.isnan(live)
    ref, cur, weights = _finite(reference), live[keep], weights[keep]
    if ref.size == 0 and cur.size == 0:
        return None
    both = np.concatenate([ref, cur])
    low, high = float(both.min()), float(both.max())
    bins = np.linspace(low, high if high > low else low + 1, 31).tolist()  # hist is typed for a list
    figure, axis = plt.subplots(figsize=(4.2, 2.6))
    if ref.size:
        axis.hist(ref, bins=bins, density=True, alpha=0.55, label=f"reference (n={ref.size})")
    if cur.size:
        axis.hist(
            cur, bins=bins, weights=weights, density=True, alpha=0.55, label=f"live (n={int(weights.sum())})"
        )
    axis.set_title(name)
    axis.legend(fontsize=7)
    return _png(figure)


def _bars_plot(name: str, reference: dict[str, float], live: dict[str, float]) -> str:
    import matplotlib.pyplot as plt

    keys = sorted(set(reference) | set(live))
    x = np.arange(len(keys))
    figure, axis = plt.subplots(figsize=(4.2, 2.6))
    axis.bar(x - 0.2, [reference.get(k, 0.0) for k in keys], 0.4, label="reference")
    axis.bar(x + 0.2, [live.get(k, 0.0) for k in keys], 0.4, label="live")
    axis.set_xticks(x, keys, fontsize=7)
    axis.set_ylabel("share")
    axis.set_title(name)
    axis.legend(fontsize=7)
    return _png(figure)


def _plots(result: CheckResult) -> list[tuple[str, str]]:
    ref, live = result.reference, result.live
    plots: list[tuple[str, str]] = []
    weights = live.get("weights") or {}
    for name in ("mean", "std", "width", "height", "confidence"):
        ref_values = ref["features"].get(name, np.array([]))
        live_values = live["features"].get(name, np.array([]))
        if np.unique(np.concatenate([_finite(ref_values), _finite(live_values)])).size < 2:
            continue  # one value on both sides (every image 256 wide): a single bar says nothing
        png = _numeric_plot(name, ref_values, live_values, weights.get(name))
        if png:
            plots.append((name, png))
    bins = len(ref["intensity_hist"])
    labels = {f"{i}/{bins}": float(v) for i, v in enumerate(ref["intensity_hist"])}
    live_hist = {f"{i}/{bins}": float(v) for i, v in enumerate(live["intensity_hist"])}
    plots.append(("intensity_hist", _bars_plot("pooled intensity histogram", labels, live_hist)))
    plots.append(
        (
            "class_shares",
            _bars_plot(
                "predicted class shares", ref.get("class_shares") or {}, live.get("class_shares") or {}
            ),
        )
    )
    if len(set(ref.get("formats") or {}) | set(live.get("formats") or {})) > 1:  # one format: nothing to see
        plots.append(("format", _bars_plot("format", ref.get("formats") or {}, live.get("formats") or {})))
    return plots


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-3 and value else f"{value:.3f}"
    return str(value)


def report_context(result: CheckResult) -> dict[str, Any]:
    """What the report shows, as plain data for templates/report.html (plots as base64 PNG)."""
    s = result.summary
    return {"s": s, "t": s["thresholds"], "acc": s["accuracy"], "plots": _plots(result), "fmt": _fmt}


def render_html(result: CheckResult) -> str:
    """The report as HTML text."""
    import matplotlib

    matplotlib.use("Agg")  # no display in CI or a pod
    return render("monitoring", "report.html", **report_context(result))


def write_report(result: CheckResult, path: Path) -> Path:
    """Write the HTML report to PATH (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(result))
    return path
