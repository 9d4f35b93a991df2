"""Label checks on pushed data: which files does the production model think are labelled wrongly?

The production (parent) model scores every pushed image; cleanlab's `find_label_issues` (confident
learning: per-class thresholds from the model's own confidence, pruned by the estimated noise rates)
flags the files whose given label disagrees with what the scores support. Files the parent trained on
are scored in-sample: the parent agrees with their old labels, so a file moved to another class folder
is still flagged, and only errors the parent itself learned go unseen (under-, never over-reported).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

MAX_LISTED = 20  # files listed per check (all are counted)


def find_label_issues(
    paths: list[str], given: list[str], probabilities: np.ndarray, classes: list[str]
) -> dict[str, Any]:
    """The check's record: flagged share, counts per (given, suggested) class pair, the first files."""
    from cleanlab.filter import find_label_issues as cleanlab_issues

    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[g] for g in given])
    flagged = cleanlab_issues(labels, probabilities, filter_by="prune_by_noise_rate")
    suggested = probabilities.argmax(axis=1)
    rows: list[dict[str, Any]] = [
        {"file": str(p), "given": g, "suggested": classes[int(s)], "probability": float(probs[int(s)])}
        for p, g, s, probs, f in zip(paths, given, suggested, probabilities, flagged, strict=True)
        if f
    ]
    rows.sort(key=lambda r: -r["probability"])
    pairs = Counter((r["given"], r["suggested"]) for r in rows)
    return {
        "method": "cleanlab.find_label_issues (prune_by_noise_rate)",
        "n": len(paths),
        "flagged": len(rows),
        "share": len(rows) / len(paths) if paths else 0.0,
        "pairs": [{"given": g, "suggested": s, "count": n} for (g, s), n in pairs.most_common()],
        "files": rows[:MAX_LISTED],
    }


def describe(result: dict[str, Any], scored_by: str) -> str:
    """One line naming the class pairs, for the validation findings, the report and the email."""
    pairs = ", ".join(
        f"{p['count']} labelled {p['given']} look like {p['suggested']}" for p in result["pairs"][:5]
    )
    return (
        f"label issues: {result['flagged']} of {result['n']} files ({result['share']:.1%}) look mislabelled "
        f"to {scored_by}: {pairs or 'none'}"
    )
