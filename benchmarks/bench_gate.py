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
3. End to end on the demo data (skip with --no-demo): a fresh home with production v1 and its locked
   reference set (`mlops pipeline code`), batch 2 pushed; then, in one process on the same data and
   models, the retrain's gate work as it was before issue 24 (the candidate and production on the
   test split, the thresholds and the raw tolerance) against what it is now (the production model
   loaded and scoring every pushed file for cleanlab's label check, the test and validation
   predictions, temperature scaling, production on the test split and both models on the reference
   set, McNemar and the bootstraps), in alternating repeats. The candidate is a second copy of
   production's model: the gate's cost does not depend on the weights, and training is not the gate.

    .venv/bin/python benchmarks/bench_gate.py [--trials 200] [--per-class 100] [--no-demo] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from demo_home import production_with_push  # noqa: E402

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


def demo_cost(repeats: int) -> None:
    """The gate's work before and after issue 24 on the demo data, in alternating repeats."""
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        home = Path(tmp)
        print(f"demo home {home}: production v1 with its reference set, batch 2 pushed ...", flush=True)
        data = production_with_push(home)
        os.environ["MLOPS_HOME"] = str(home)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        _demo_rounds(home, data, repeats)


def _demo_rounds(home: Path, pushed: Path, repeats: int) -> None:
    import keras

    from core.preprocessing import PreprocessSpec
    from core.settings import load_settings
    from registry import open_registry
    from training import stages
    from training.evaluate import metrics_from_probabilities, predict_files
    from training.stage_results import Trained

    def quiet(message: str) -> None:
        pass

    settings = load_settings({"home": str(home)})
    parent = open_registry(settings).fetch("production:current")
    recorded = parent.manifest.preprocessing
    assert recorded is not None
    spec = PreprocessSpec(recorded.image_size, recorded.channels)
    snapshot = stages.resolve(settings, str(pushed), quiet)
    dataset = stages.load(settings, snapshot, quiet)
    parent_ref = f"production:{parent.version}"
    reference = (parent_ref, parent.manifest)
    checked = stages.validate(settings, dataset, spec, reference, "retrain", quiet)
    data = stages.split(settings, checked, quiet)
    candidate = keras.models.load_model(parent.model_path, compile=False)
    trained = Trained(data, candidate, {}, {}, None)
    classes = list(dataset.classes)
    truth = data.test_labels()
    gate = settings.gate

    def before() -> None:
        probabilities = predict_files(candidate, data.test_files(), spec)
        metrics = metrics_from_probabilities(probabilities, classes, truth)
        found = stages.production_baseline(stages.production_model(settings), data.test_files(), truth, quiet)
        assert found is not None
        predicted = [classes[i] for i in probabilities.argmax(axis=1)]
        decide(metrics, gate, None)
        _old_rule(truth, predicted, found[1], gate.regression_tolerance)

    parts: dict[str, list[float]] = {"label check": [], "evaluate + calibration": [], "gate": []}

    def after() -> None:
        started = time.perf_counter()
        scorer = keras.models.load_model(parent.model_path, compile=False)
        accuracy = parent.manifest.metrics.accuracy
        stages.check_labels(settings, checked, (parent_ref, scorer), accuracy, quiet)
        evaluated_at = time.perf_counter()
        evaluated = stages.evaluate(trained, quiet, gate.confidence)
        gated_at = time.perf_counter()
        gated = stages.gate(settings, evaluated, quiet)
        done = time.perf_counter()
        assert gated.baseline is not None and gated.decision.get("reference") is not None
        parts["label check"].append(evaluated_at - started)
        parts["evaluate + calibration"].append(gated_at - evaluated_at)
        parts["gate"].append(done - gated_at)

    def statistics_only() -> None:
        """The new checks' own computations on model outputs computed beforehand: cleanlab on the
        pushed files' scores, the temperature fit, and McNemar + the bootstraps twice on the test
        split (the gate's second comparison runs on the reference set: the same work on its size)."""
        find_label_issues(paths, given, scores, classes)
        calibrate(val, val_labels, test_probs, test_idx, gate.confidence)
        for _ in range(2):  # test split and reference set
            compare(truth, predicted, predicted, classes, resamples=gate.bootstrap_resamples)

    from training.calibration import calibrate
    from training.label_check import find_label_issues

    paths = [dataset.path_of(i) for i in dataset.items]
    given = [i.label for i in dataset.items]
    scores = predict_files(candidate, paths, spec)
    test_probs = predict_files(candidate, data.test_files(), spec)
    predicted = [classes[i] for i in test_probs.argmax(axis=1)]
    index = {c: i for i, c in enumerate(classes)}
    test_idx = np.array([index[label] for label in truth])
    val = predict_files(candidate, data.val_files(), spec)
    val_labels = np.array([index[label] for label in data.val_labels()])

    files = len(dataset.items)
    print(f"demo data: {files} pushed files, {len(truth)} test images, a reference set in force; warming up")
    before()
    after()
    for values in parts.values():
        values.clear()
    times: dict[str, list[float]] = {"before": [], "after": [], "statistics": []}
    for _ in range(repeats):
        for name, fn in (("before", before), ("after", after), ("statistics", statistics_only)):
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    old, new = statistics.median(times["before"]), statistics.median(times["after"])
    print(f"\ngate end to end on the demo data, median of {repeats} alternating repeats")
    print(f"{'':52} {'seconds':>8} {'x before':>9}")
    print(f"{'before (test split, thresholds, raw tolerance)':52} {old:8.2f} {1:8.2f}x")
    print(f"{'after (label check, calibration, reference, paired)':52} {new:8.2f} {new / old:8.2f}x")
    for name, values in parts.items():
        print(f"{'  of which ' + name:52} {statistics.median(values):8.2f}")
    stats = statistics.median(times["statistics"])
    print(f"{'  of which statistics (cleanlab, T, bootstrap)':52} {stats:8.2f}")
    print(f"{'before + the statistics alone':52} {old + stats:8.2f} {(old + stats) / old:8.2f}x")
    print(f"goal: after <= 2x before: {'met' if new <= 2 * old else 'NOT met'} ({new / old:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--accuracy", type=float, default=0.93)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-demo", action="store_true", help="skip the end-to-end cost on the demo data")
    parser.add_argument("--repeats", type=int, default=3, help="end-to-end repeats (default 3)")
    args = parser.parse_args()
    error_rates(args.trials, args.per_class, args.accuracy, args.seed)
    print()
    cost(args.per_class, 20)
    if not args.no_demo:
        print()
        demo_cost(args.repeats)


if __name__ == "__main__":
    main()
