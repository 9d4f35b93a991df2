"""Benchmark: how often the canary analysis pulls each candidate, and after how many requests, for
the old threshold rule and the tests that replace it, on the same replays.

1. Traces: the real app (real Keras model, routes, metrics code) answers /predict for images of
   every class, once as production and once per candidate: healthy (the same model, a second
   independent trace), errors on one class, slow, collapsed to one class, and subtler faults near
   the limits: errors on 4%, 2% (at the +2% limit) and 1% of requests at random, a smaller
   slowdown (the faults of tests/deploy/fault_serve.py). Each request's status, latency, label and
   confidence is kept.
2. Replays: each run draws requests from the traces at random (production twice as often as the
   canary: the 1-of-3 workers split `--canary 25` gives beside 2 production workers), feeds them
   to Snapshot and both rules exactly as the live loop does, reading metrics every
   `--check-every` canary requests until a verdict. Both rules see the same draws.

Reported per candidate and rule: runs pulled (fail, plus inconclusive for the new rule: both pull
the canary), the share pulled, and the median canary requests until the pull. For the identical
candidate the pulled share is the false-pull rate (goal <= [canary] alpha, 1%); for 1% errors it
is the rate a candidate under the +2% limit is wrongly pulled (goal <= 5%).

    .venv/bin/python benchmarks/bench_canary.py [--quick] [--runs 200] [--check-every 10]
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
    "errors on 2% (at limit)": "flaky:0.02",
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


def old_compare(baseline, canary, limits) -> str:
    """The rule before issue 25, for comparison: fail as soon as an estimate crosses a threshold."""
    from deploy.canary_analysis import FAIL, PASS, PENDING, total_variation

    if min(baseline.requests, canary.requests) < limits.min_requests:
        return PENDING
    base_p99, can_p99 = baseline.quantile(0.99), canary.quantile(0.99)
    base_conf, can_conf = baseline.mean_confidence, canary.mean_confidence
    crossed = (
        canary.error_rate - baseline.error_rate > limits.max_error_rate_increase
        or (
            base_p99 is not None
            and can_p99 is not None
            and (can_p99 > base_p99 * limits.max_p99_ratio if base_p99 > 0 else True)
            and can_p99 - base_p99 > limits.min_p99_increase_s
        )
        or total_variation(baseline.class_shares(), canary.class_shares()) > limits.max_class_share_shift
        or (
            base_conf is not None
            and can_conf is not None
            and base_conf - can_conf > limits.max_confidence_drop
        )
    )
    if crossed:
        return FAIL
    return PASS if canary.requests >= limits.requests else PENDING


def replay(base: list[Answer], canary: list[Answer], limits, check_every: int, rng: random.Random):
    """One run of both rules on the same draws: {rule: (status, canary requests at the verdict)}."""
    from deploy.canary_analysis import PENDING, compare

    seen_base: list[Answer] = []
    seen_canary: list[Answer] = []
    looks, done = 0, {}
    while len(done) < 2:
        for _ in range(check_every):
            seen_canary.append(rng.choice(canary))
            seen_base.extend(rng.choice(base) for _ in range(2))
        b, c = snapshot(seen_base), snapshot(seen_canary)
        if "old" not in done and (status := old_compare(b, c, limits)) != PENDING:
            done["old"] = (status, len(seen_canary))
        if "new" not in done:
            verdict = compare(b, c, limits, looks)
            looks = verdict.looks
            if verdict.status != PENDING:
                done["new"] = (verdict.status, len(seen_canary), verdict.reasons[:1])
    return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="replays per candidate (default 200)")
    parser.add_argument("--quick", action="store_true", help="50 replays per candidate, for a first look")
    parser.add_argument("--check-every", type=int, default=10, help="canary requests between metric reads")
    parser.add_argument("--trace", type=int, default=300, help="real requests per trace (slow: a third)")
    args = parser.parse_args()
    if args.quick:
        args.runs = 50

    from canary_models import brightness_images, save_brightness_model
    from fault_serve import inject

    from core.settings import load_settings
    from deploy.canary_analysis import FAIL, INCONCLUSIVE, look_plan
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
    plan = look_plan(limits)
    print(
        f"canary analysis at the default settings: a pass needs {limits.requests} canary requests; new rule: "
        f"looks at {plan} canary requests, alpha {limits.alpha:g} over 4 rules x {len(plan)} looks; "
        f"{args.runs} replays per candidate, a metrics read every {args.check_every} canary requests, "
        f"production:canary 2:1 (traces: {traced_s:.0f} s)\n"
    )
    head = f"{'candidate [trace 5xx]':<32}{'old pulled':>16}{'median':>8}{'new fail':>10}{'inconcl.':>10}"
    head += f"{'new pulled':>16}{'median':>8}"
    print(head + "  first reason (new)")
    started = time.perf_counter()
    for name, answers in candidates.items():
        runs = [replay(production, answers, limits, args.check_every, rng) for _ in range(args.runs)]
        old = sorted(n for (status, n) in (r["old"] for r in runs) if status == FAIL)
        fails = sorted(r["new"][1] for r in runs if r["new"][0] == FAIL)
        unsure = sorted(r["new"][1] for r in runs if r["new"][0] == INCONCLUSIVE)
        pulled = sorted(fails + unsure)
        reason = next((r["new"][2][0] for r in runs if r["new"][2]), "none")
        errors = sum(a.status >= 500 for a in answers) / len(answers)
        name = f"{name} [{errors:.1%}]"

        def share(n: int) -> str:
            return f"{n:>4} ({n / args.runs:>5.1%})"

        def median(ns: list[int]) -> str:
            return f"{statistics.median(ns):.0f}" if ns else "-"

        print(
            f"{name:<32}{share(len(old)):>16}{median(old):>8}{len(fails):>10}{len(unsure):>10}"
            f"{share(len(pulled)):>16}{median(pulled):>8}  {reason[:90]}"
        )
    print(
        f"\nold: fail as soon as an estimate crosses a threshold; new: one-sided tests at the planned looks, "
        f"inconclusive (over a limit, suggestive, not proven) pulls too. [trace 5xx]: the candidate trace's "
        "error rate, the true rate the replays draw from. median: canary requests until the pull. "
        f"(replays: {time.perf_counter() - started:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
