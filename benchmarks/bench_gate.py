"""Benchmark: the gate's no-regression test, its error rates and its cost.

1. Error rates, on simulated paired predictions of a 3-class test split (100 images per class):
   production is right on each image with probability `--accuracy`, independently. The candidate is
   either equally good with independent errors (any regression it is blamed for is a false alarm) or
   equally good except on one class whose recall drops by 0.05, 0.10, 0.20 or 0.30 (the share of
   trials it is stopped is the test's power there). Both the new rule (bootstrap interval below
   -tolerance, training/gate.py) and the old rule (candidate accuracy below production's minus the
   tolerance) are scored on the same trials.
2. Cost: the gate's decision with the paired statistics (McNemar + 2,000 bootstrap resamples, on the
   test split and a reference set of the same size) against the old decision, on the same inputs.
   Model inference (the same for both, besides one more pass over the reference set) is not included.

    .venv/bin/python benchmarks/bench_gate.py [--trials 200] [--per-class 100]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.settings import GateSettings  # noqa: E402
from training.evaluate import compute_metrics  # noqa: E402
from training.gate import decide  # noqa: E402
from training.paired import compare  # noqa: E402

CLASSES = ["covid", "normal", "pneumonia"]


def _predict(truth: np.ndarray, recall: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Right with probability recall[class], else one of the other classes at random."""
    out = []
    for t in truth:
        if rng.random() < recall[t]:
            out.append(CLASSES[t])
        else:
            out.append(CLASSES[(t + rng.integers(1, len(CLASSES))) % len(CLASSES)])
    return out


def _old_rule(truth: list[str], cand: list[str], prod: list[str], tolerance: float) -> bool:
    """The gate before: candidate accuracy below production's minus the tolerance is a regression."""
    acc = np.mean([t == c for t, c in zip(truth, cand, strict=True)])
    base = np.mean([t == p for t, p in zip(truth, prod, strict=True)])
    return bool(acc < base - tolerance)


def _new_rule(truth: list[str], cand: list[str], prod: list[str], gate: GateSettings) -> bool:
    comparison = compare(
        truth, cand, prod, CLASSES, resamples=gate.bootstrap_resamples, seed=gate.bootstrap_seed
    )
    tol = gate.regression_tolerance
    rows = [comparison["accuracy"], *comparison["recall"].values()]
    return any(r["high"] is not None and r["high"] < -tol for r in rows)


def error_rates(trials: int, per_class: int, accuracy: float, seed: int) -> None:
    gate = GateSettings()
    rng = np.random.default_rng(seed)
    truth_idx = np.repeat(np.arange(len(CLASSES)), per_class)
    truth = [CLASSES[i] for i in truth_idx]
    base = np.full(len(CLASSES), accuracy)
    print(f"no-regression test: {trials} trials, {per_class} images per class, production recall {accuracy}")
    print(f"{'candidate':<34} {'new rule stops':>15} {'old rule stops':>15}")
    for drop in (0.0, 0.05, 0.10, 0.20, 0.30):
        recall = base.copy()
        recall[2] -= drop
        new = old = 0
        for _ in range(trials):
            prod = _predict(truth_idx, base, rng)
            cand = _predict(truth_idx, recall, rng)
            new += _new_rule(truth, cand, prod, gate)
            old += _old_rule(truth, cand, prod, gate.regression_tolerance)
        label = "equal (false alarm rate)" if drop == 0 else f"pneumonia recall -{drop:.2f} (power)"
        print(f"{label:<34} {new / trials:>15.3f} {old / trials:>15.3f}")


def cost(per_class: int, repeats: int) -> None:
    gate = GateSettings()
    rng = np.random.default_rng(1)
    truth_idx = np.repeat(np.arange(len(CLASSES)), per_class)
    truth = [CLASSES[i] for i in truth_idx]
    base = np.full(len(CLASSES), 0.93)
    cand, prod = _predict(truth_idx, base, rng), _predict(truth_idx, base, rng)
    metrics = compute_metrics(truth, cand, CLASSES)
    baseline = {
        "ref": "production:1",
        "version": 1,
        "accuracy": compute_metrics(truth, prod, CLASSES)["accuracy"],
    }

    def old() -> None:
        decide(metrics, gate, None)  # the thresholds, then the raw-tolerance comparison
        _old_rule(truth, cand, prod, gate.regression_tolerance)

    def new() -> None:
        on_test = compare(truth, cand, prod, CLASSES, resamples=gate.bootstrap_resamples)
        on_ref = compare(truth, cand, prod, CLASSES, resamples=gate.bootstrap_resamples)
        reference = {
            "version": 1, "key": "reference:1", "on": "reference set 1", "fingerprint": "x", "n": len(truth),
            "metrics": metrics, "baseline": baseline, "comparison": on_ref,
        }  # fmt: skip
        decide(metrics, gate, baseline, on_test, {"ece_after": 0.05, "ece_noise": 0.1}, reference)

    for name, fn in (
        ("before (thresholds, raw tolerance)", old),
        ("after (paired tests, reference set)", new),
    ):
        started = time.perf_counter()
        for _ in range(repeats):
            fn()
        print(f"{name:<38} {1000 * (time.perf_counter() - started) / repeats:8.1f} ms per decision")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--accuracy", type=float, default=0.93)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    error_rates(args.trials, args.per_class, args.accuracy, args.seed)
    print()
    cost(args.per_class, 20)


if __name__ == "__main__":
    main()
