"""Benchmark: how many requests the canary analysis needs to catch each fault, and how often it
pulls a candidate identical to production (false pulls), at the default [canary] thresholds.

1. Traces: the real app (real Keras model, routes, metrics code) answers /predict for images of
   every class, once as production and once per candidate: healthy (the same model, a second
   independent trace), errors on one class, slow, collapsed to one class, and subtler faults near
   the thresholds: errors on 4% and 1% of requests at random, a smaller slowdown (the faults of
   tests/deploy/fault_serve.py). Each request's status, latency, label and confidence is kept.
2. Replays: each run draws requests from the traces at random (production twice as often as the
   canary: the 1-of-3 workers split `--canary 25` gives beside 2 production workers), feeds them
   to the analysis's own Snapshot/compare exactly as the live loop does, and checks every
   `--check-every` canary requests (one metrics read) until a verdict.

Reported per candidate: pulled runs, median (and p90) canary requests until the pull, beside the
analysis's own floor (min_requests: no verdict before it) and the sample a pass needs (requests).

    .venv/bin/python benchmarks/bench_canary.py [--runs 200] [--check-every 10]
"""

from __future__ import annotations

import argparse
import bisect
import logging
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "deploy"))  # the test model, images and fault injection

FAULTS = {
    "errors on pneumonia": "error:pneumonia",
    "slow (+0.25 s)": "slow:0.25",
    "collapsed": "collapse",
    # Subtler: near the default limits (5xx rate +2%, p99 x2 and +0.1 s), where the thresholds decide.
    "errors on 4% at random": "flaky:0.04",
    "errors on 1% at random": "flaky:0.01",
    "slow (+0.12 s)": "slow:0.12",
}


@dataclass(frozen=True)
class Answer:
    """One /predict outcome as the API's metrics see it."""

    status: int
    latency_s: float
    label: str | None
    confidence: float | None


def trace(bundle, images: list[bytes], count: int, seed: int) -> list[Answer]:
    """COUNT real /predict calls through the real app on BUNDLE, images in random order."""
    from model_api import create_app

    app = create_app({"TESTING": True, "MODEL_BUNDLE": bundle, "PREDICTION_LOG": False})
    client, rng, out = app.test_client(), random.Random(seed), []
    for _ in range(count):
        started = time.perf_counter()
        answer = client.post("/predict", data=rng.choice(images), content_type="image/png")
        latency = time.perf_counter() - started
        body = answer.get_json() if answer.status_code == 200 else None
        confidence = max(body["probabilities"].values()) if body else None
        out.append(Answer(answer.status_code, latency, body and body["label"], confidence))
    return out


def snapshot(answers: list[Answer]):
    """The Snapshot the analysis would read from /metrics after these answers."""
    from deploy.canary_analysis import Snapshot
    from model_api.metrics import LATENCY_BUCKETS

    bounds = [*LATENCY_BUCKETS, float("inf")]
    per_bucket = [0.0] * len(bounds)
    classes: dict[str, float] = {}
    conf_sum = conf_count = 0.0
    for a in answers:
        per_bucket[bisect.bisect_left(bounds, a.latency_s)] += 1
        if a.label is not None:
            classes[a.label] = classes.get(a.label, 0.0) + 1
            conf_sum, conf_count = conf_sum + a.confidence, conf_count + 1
    cumulative, total = {}, 0.0
    for bound, count in zip(bounds, per_bucket, strict=True):
        total += count
        cumulative[bound] = total
    errors = sum(1 for a in answers if a.status >= 500)
    return Snapshot(float(len(answers)), float(errors), cumulative, classes, conf_sum, conf_count)


def replay(base: list[Answer], canary: list[Answer], limits, check_every: int, rng: random.Random):
    """One analysis run on requests drawn from the traces: (verdict, canary requests at the verdict)."""
    from deploy.canary_analysis import PENDING, compare

    seen_base: list[Answer] = []
    seen_canary: list[Answer] = []
    while True:
        for _ in range(check_every):
            seen_canary.append(rng.choice(canary))
            seen_base.extend(rng.choice(base) for _ in range(2))
        verdict = compare(snapshot(seen_base), snapshot(seen_canary), limits)
        if verdict.status != PENDING:
            return verdict.status, len(seen_canary)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="replays per candidate (default 200)")
    parser.add_argument("--check-every", type=int, default=10, help="canary requests between metric reads")
    parser.add_argument("--trace", type=int, default=300, help="real requests per trace (slow: a third)")
    args = parser.parse_args()

    from canary_models import brightness_images, save_brightness_model
    from fault_serve import inject

    from core.settings import load_settings
    from model_api.bundle import load_bundle

    logging.getLogger("model_api").setLevel(logging.CRITICAL)  # the injected errors' tracebacks
    limits = load_settings().canary
    folder = Path(tempfile.mkdtemp(prefix="bench-canary-"))
    manifest = {**save_brightness_model(folder), "name": "xray-classifier", "version": 1}
    images = brightness_images(48)

    def bundle(fault: str | None):
        loaded = load_bundle(folder / "model.keras", manifest)
        if fault:
            inject(loaded, fault)
        return loaded

    started = time.perf_counter()
    production = trace(bundle(None), images, args.trace, seed=1)
    candidates = {"identical (healthy)": trace(bundle(None), images, args.trace, seed=2)}
    for name, fault in FAULTS.items():
        count = args.trace // 3 if fault.startswith("slow") else args.trace
        candidates[name] = trace(bundle(fault), images, count, seed=3)
    traced_s = time.perf_counter() - started

    rng = random.Random(15)
    print(
        f"canary analysis at the default thresholds: min_requests {limits.min_requests} per side, a pass "
        f"needs {limits.requests} canary requests; {args.runs} replays per candidate, a metrics read every "
        f"{args.check_every} canary requests, production:canary traffic 2:1 (traces: {traced_s:.0f} s)\n"
    )
    print(f"{'candidate':<22}{'pulled':>12}{'median req':>12}{'p90 req':>9}{'x floor':>9}  first reason")
    for name, answers in candidates.items():
        outcomes = [replay(production, answers, limits, args.check_every, rng) for _ in range(args.runs)]
        pulls = sorted(n for status, n in outcomes if status == "fail")
        median = statistics.median(pulls) if pulls else None
        p90 = pulls[int(0.9 * (len(pulls) - 1))] if pulls else None
        from deploy.canary_analysis import compare

        reason = compare(snapshot(production), snapshot(answers), limits).reasons[:1]
        print(
            f"{name:<22}{len(pulls):>6} / {args.runs:<4}"
            f"{'-' if median is None else f'{median:.0f}':>12}{'-' if p90 is None else p90:>9}"
            f"{'-' if median is None else f'{median / limits.min_requests:.1f}':>9}  "
            f"{(reason[0][:70] if reason else 'none')}"
        )
    print(
        "\npulled: runs that ended in a pull (for the identical candidate: the false-pull rate); "
        "median/p90 req: canary requests served until the pull; x floor: median / min_requests."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
