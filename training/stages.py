"""The training stages, in order; each takes the previous stage's result and returns its own.

preflight (registry and signer usable) · resolve (--data → Snapshot with its revision) · load (scan,
or open a TFRecord snapshot → Dataset) · validate (→ Validated) · split (→ Split) · train (→ Trained)
· evaluate (→ Evaluated) · gate (→ Gated) · register (→ Registered). `training/train.py` and
`retraining/retrain.py` compose them; they differ in where the weights start and what the data is
validated against. Results: training/stage_results.py.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from core.actor import default_actor
from core.errors import CheckFailed, MlopsError
from core.preprocessing import PreprocessSpec
from core.settings import Settings
from training.data import Dataset, scan_snapshot
from training.data_validation import validate as validate_data
from training.fit import Log
from training.snapshot import is_snapshot, open_snapshot
from training.sources import Snapshot, resolve_source
from training.split import split_dataset, split_rule
from training.stage_results import Evaluated, Gated, Registered, Split, Start, Trained, Validated

if TYPE_CHECKING:
    from registry.manifest import Manifest
    from training.distribute import Distribution

MAX_SKIPPED_LINES = 20


def log_stderr(message: str) -> None:
    """Progress goes to stderr so stdout stays clean for --json."""
    print(message, file=sys.stderr, flush=True)


def preflight(settings: Settings, actor: str | None, log: Log) -> None:
    """Before any training: the registry takes writes and the signing key works (a refusal is logged)."""
    from registry import IntegrityError, open_registry
    from registry.signing import check_signer

    registry = open_registry(settings)
    registry.check_writable(actor or default_actor())
    try:
        key_id = check_signer(registry.policy.signing)
    except IntegrityError as exc:
        registry.record_refusal("train", actor or default_actor(), str(exc))
        raise
    signed = f"signed with key {key_id[:16]}" if key_id else "unsigned (no signing key: see mlops keys init)"
    log(f"registry {registry.uri} takes writes; the version will be {signed}")


def resolve(settings: Settings, data_uri: str, log: Log) -> Snapshot:
    """--data → a local snapshot named by its revision (commit, object generations), and say which."""
    snapshot = resolve_source(data_uri, settings.cache_dir, settings.sources.git_timeout_s)
    log(f"dataset source: {snapshot.describe()}")
    return snapshot


def load(settings: Settings, snapshot: Snapshot, log: Log) -> Dataset:
    """Scan the snapshot (or open a TFRecord one); report what it holds and every file skipped."""
    if is_snapshot(snapshot.root):
        dataset = open_snapshot(snapshot, settings.cache_dir, log)
    else:
        dataset = scan_snapshot(snapshot)
    counts = ", ".join(f"{c} {n}" for c, n in dataset.class_counts.items())
    log(
        f"dataset {dataset.uri}: {len(dataset.items)} images in {len(dataset.classes)} classes "
        f"({counts}); fingerprint {dataset.fingerprint[:12]}; {len(dataset.skipped)} skipped"
    )
    for row in dataset.skipped[:MAX_SKIPPED_LINES]:
        log(f"  skipped {row['path']}: {row['reason']}")
    if len(dataset.skipped) > MAX_SKIPPED_LINES:
        log(f"  ... and {len(dataset.skipped) - MAX_SKIPPED_LINES} more (all listed in the manifest)")
    return dataset


def validate(
    settings: Settings,
    dataset: Dataset,
    spec: PreprocessSpec,
    reference: tuple[str, Manifest] | None,
    mode: str,
    log: Log,
) -> Validated:
    """The dataset's statistics (images as a model with SPEC sees them) and its validation against the
    reference version's training data; the caller decides what a stop means."""
    from training.dataset_stats import summarize

    # A TFRecord snapshot holds no image files to sample: the statistics it stored stand in.
    stored = dataset.records.statistics if dataset.records is not None else None
    statistics = stored or summarize(dataset, settings.validation.stats_sample, spec)
    check = validate_data(dataset, statistics, reference, settings.validation, mode)
    for line in check.lines():
        log(line)
    return Validated(dataset, spec, statistics, check)


def check_labels(
    settings: Settings, data: Validated, scorer: tuple[str, Any], accuracy: float | None, log: Log
) -> None:
    """Score every pushed file with SCORER (ref, keras model) and add cleanlab's label issues to the
    data check: a warning naming the class pairs, a stop above [validation] max_label_issue_share."""
    from training.evaluate import predict_files
    from training.label_check import describe, find_label_issues

    dataset, check = data.dataset, data.check
    ref, model = scorer
    needed = settings.validation.label_check_min_accuracy
    if accuracy is None or accuracy < needed:
        shown = "unknown" if accuracy is None else f"{accuracy:.3f}"
        check.notes.append(
            f"label check skipped: {ref}'s test accuracy {shown} < {needed:.2f}, no judge of labels"
        )
        return
    if dataset.records is not None:
        check.notes.append("label check skipped: a TFRecord snapshot holds no image files to score")
        return
    outputs = int(model.outputs[0].shape[-1])
    if outputs != len(dataset.classes):
        check.notes.append(
            f"label check skipped: {ref} has {outputs} classes, the data {len(dataset.classes)}"
        )
        return
    paths = [dataset.path_of(i) for i in dataset.items]
    probabilities = predict_files(model, paths, data.spec)
    result = find_label_issues(
        [i.path for i in dataset.items], [i.label for i in dataset.items], probabilities, dataset.classes
    )
    check.label_issues = {**result, "scored_by": ref}
    line = describe(result, ref)
    limit = settings.validation.max_label_issue_share
    if result["share"] > limit:
        check.stops.append(f"{line}; above max_label_issue_share {limit:.0%}: fix the labels and push again")
    elif result["flagged"]:
        check.warnings.append(line)
    log(f"  {line}")


def production_reference(settings: Settings) -> tuple[str, Manifest] | None:
    """("production:N", manifest) of the current production model, or None when production is empty."""
    from registry import NotFoundError, open_registry

    try:
        version = open_registry(settings).resolve("production:current")
    except NotFoundError:
        return None
    return version.ref, version.manifest


def split(settings: Settings, data: Validated, log: Log, distribution: Distribution | None = None) -> Split:
    """Content-hash split → tf.data pipelines (train shuffled with the seed).

    A TFRecord snapshot (training/snapshot.py) feeds its stored tensors instead of decoding files.
    With several workers the inputs repeat and an epoch is a fixed number of steps.
    """
    from training.inputs import image_dataset

    cfg, dataset, spec = settings.train, data.dataset, data.spec
    splits = split_dataset(dataset, cfg.val_fraction, cfg.test_fraction)
    sizes = {name: len(items) for name, items in splits.items()}
    log(f"split by content hash: train {sizes['train']}, val {sizes['val']}, test {sizes['test']}")
    empty = [name for name, n in sizes.items() if n == 0]
    if empty:
        raise MlopsError(
            f"dataset {dataset.uri} is too small: the {', '.join(empty)} split(s) got no images; "
            "add images (a few dozen per class at least)"
        )
    index = {c: i for i, c in enumerate(dataset.classes)}
    records = dataset.records
    if records is not None:
        records.check_split_rule(split_rule(cfg.val_fraction, cfg.test_fraction), spec)

    def pipeline(name: str, seed: int | None):
        if records is not None:
            return records.dataset(name, cfg.batch_size, seed)
        items = splits[name]
        return image_dataset(
            [dataset.path_of(i) for i in items], [index[i.label] for i in items], spec, cfg.batch_size, seed
        )

    tf_data = {"train": pipeline("train", cfg.seed), "val": pipeline("val", None)}
    steps = None
    if distribution is not None and distribution.multi_worker:
        from training.distribute import for_workers

        workers, steps, how = distribution.cluster.workers, {}, {}
        for name in ("train", "val"):
            by_file = records is not None and records.shard_count(name) >= workers
            tf_data[name], steps[name] = for_workers(tf_data[name], sizes[name], cfg.batch_size, by_file)
            how[name] = "by file" if by_file else "by data"
        log(
            f"inputs for {workers} workers: train sharded {how['train']}, {steps['train']} steps per epoch; "
            f"val sharded {how['val']}, {steps['val']} steps"
        )
    return Split(data, splits, tf_data, steps)


def train(settings: Settings, data: Split, start: Start, distribution: Distribution, log: Log) -> Trained:
    """Fit the start model on the train split (early stopping on val); on the chief, a plain float32 copy.

    Every worker fits (the collectives need them all); only the chief goes on to evaluate and register.
    """
    from training.distribute import cluster_errors, plain_copy
    from training.fit import fit

    started = time.perf_counter()
    model = start.model
    with cluster_errors(distribution), distribution.scope():
        history = fit(
            model,
            data.tf_data,
            epochs=start.epochs,
            learning_rate=start.learning_rate,
            patience=settings.train.early_stopping_patience,
            log=log,
            steps=data.steps,
            distributed=distribution.name != "one",
        )
    params = {
        **start.params,
        "epochs_run": len(history.get("loss", [])),
        "train_seconds": round(time.perf_counter() - started, 2),
    }
    if distribution.is_chief and (distribution.name != "one" or distribution.mixed_precision):
        model = plain_copy(model)  # evaluated and saved outside the strategy, in float32
    return Trained(data, model, history, params, start.parent)


def worker_summary(distribution: Distribution, log: Log) -> dict[str, Any]:
    """What a non-chief worker reports: it trained, the chief evaluates and registers."""
    index, workers = distribution.cluster.index, distribution.cluster.workers
    message = f"worker {index} of {workers}: training done; the chief (worker 0) evaluates and registers"
    log(message)
    return {
        "skipped": True, "worker": index, "message": message, "ref": None, "version": None,
        "metrics": None, "gate": None, "report": None, "parent": None, "dataset": None,
    }  # fmt: skip


def evaluate(trained: Trained, log: Log, confidence: float = 0.95) -> Evaluated:
    """The trained model's metrics on the test split (never seen by the fit), and its temperature
    fitted on the validation split (training/calibration.py)."""
    import numpy as np

    from training.calibration import calibrate
    from training.evaluate import metrics_from_probabilities, predict_files

    data = trained.split
    classes = data.dataset.classes
    probabilities = predict_files(trained.model, data.test_files(), data.spec)
    metrics = metrics_from_probabilities(probabilities, classes, data.test_labels())
    log(f"test accuracy {metrics['accuracy']:.3f} on {metrics['n']} images")
    index = {c: i for i, c in enumerate(classes)}
    records = data.dataset.records
    if records is not None:  # a TFRecord snapshot keeps the validation split as stored tensors, not files
        rows, seen = [], []
        for images, labels in records.dataset("val", 64, None):
            rows.append(np.asarray(trained.model(images, training=False)))
            seen.append(np.asarray(labels))
        val = np.concatenate(rows) if rows else np.zeros((0, len(classes)))
        val_labels = np.concatenate(seen).astype(int) if seen else np.zeros(0, dtype=int)
    else:
        val = predict_files(trained.model, data.val_files(), data.spec)
        val_labels = np.array([index[label] for label in data.val_labels()], dtype=int)
    calibration = calibrate(
        val,
        val_labels,
        probabilities,
        np.array([index[label] for label in data.test_labels()], dtype=int),
        confidence,
    )
    log(
        f"temperature {calibration['temperature']:.3f} ({calibration['method']}; "
        f"{calibration['n']} validation images): "
        f"ECE on the test split {calibration['ece_before']:.3f} -> {calibration['ece_after']:.3f}"
    )
    return Evaluated(trained, probabilities, metrics, calibration, val, val_labels)


def production_model(settings: Settings) -> tuple[str, int, Any, PreprocessSpec, list[str]] | None:
    """Production:current loaded: (ref, version, keras model, its spec, its classes), None when empty."""
    import keras

    from registry import NotFoundError, open_registry

    try:
        local = open_registry(settings).fetch("production:current")
    except NotFoundError:
        return None
    model = keras.models.load_model(local.model_path, compile=False)
    recorded = local.manifest.preprocessing
    if recorded is None:
        raise MlopsError(f"production:{local.version} records no preprocessing; it cannot be a baseline")
    spec = PreprocessSpec(recorded.image_size, recorded.channels)
    return f"production:{local.version}", local.version, model, spec, list(local.manifest.classes)


def _predicted(
    model: Any, classes: list[str], files: list[Any], spec: PreprocessSpec
) -> tuple[np.ndarray, list[str]]:
    """A model's metrics-ready probabilities as (probabilities, predicted label per file)."""
    from training.evaluate import predict_files

    probabilities = predict_files(model, files, spec)
    return probabilities, [classes[i] for i in probabilities.argmax(axis=1)] if len(probabilities) else []


def production_baseline(
    production: tuple[str, int, Any, PreprocessSpec, list[str]] | None,
    files: list[Any],
    labels: list[str],
    log: Log,
) -> tuple[dict, list[str]] | None:
    """Production on these labelled files: ({"ref", "version", "accuracy", "metrics"}, its predicted
    label per file), or None when production is empty."""
    from training.evaluate import metrics_from_probabilities

    if production is None:
        return None
    ref, version, model, spec, classes = production
    probabilities, predicted = _predicted(model, classes, files, spec)
    metrics = metrics_from_probabilities(probabilities, classes, labels)
    # The full metrics too: `mlops ui` shows candidate and production side by side on this split.
    return {"ref": ref, "version": version, "accuracy": metrics["accuracy"], "metrics": metrics}, predicted


def _paired(
    settings: Settings, labels: list[str], candidate: list[str], baseline: list[str], classes
) -> dict:
    from training.paired import compare

    cfg = settings.gate
    return compare(
        labels, candidate, baseline, classes,
        confidence=cfg.confidence, resamples=cfg.bootstrap_resamples, seed=cfg.bootstrap_seed,
    )  # fmt: skip


def reference_check(settings: Settings, evaluated: Evaluated, production: Any, log: Log) -> dict | None:
    """The candidate (and production) on the locked reference set in force, or None when there is none."""
    from training.evaluate import metrics_from_probabilities
    from training.reference_set import in_force, load_reference

    number = in_force(settings)
    if number is None:
        log("reference set: none in force (mlops reference set --data DIR registers one)")
        return None
    manifest, files, labels = load_reference(settings, number)
    data = evaluated.trained.split
    classes = list(data.dataset.classes)
    probabilities, predicted = _predicted(evaluated.trained.model, classes, files, data.spec)
    metrics = metrics_from_probabilities(probabilities, classes, labels)
    out = {
        "version": number, "key": f"reference:{number}", "on": f"reference set {number}",
        "fingerprint": manifest["fingerprint"], "n": len(files), "metrics": metrics,
        "baseline": None, "comparison": None,
    }  # fmt: skip
    line = f"reference set {number} ({len(files)} images): candidate accuracy {metrics['accuracy']:.3f}"
    found = production_baseline(production, files, labels, log)
    if found is not None:
        out["baseline"], production_predicted = found
        out["comparison"] = _paired(settings, labels, predicted, production_predicted, classes)
        line += f", {out['baseline']['ref']} {out['baseline']['accuracy']:.3f}"
    log(line)
    return out


def gate(settings: Settings, evaluated: Evaluated, log: Log) -> Gated:
    """The gate's decision: thresholds, and no regression against production on the same test split
    and on the locked reference set (paired: McNemar and bootstrap intervals, training/paired.py)."""
    from training import gate as gating

    data = evaluated.trained.split
    classes = list(data.dataset.classes)
    production = production_model(settings)
    found = production_baseline(production, data.test_files(), data.test_labels(), log)
    baseline, comparison = None, None
    if found is not None:
        baseline, production_predicted = found
        log(
            f"production baseline {baseline['ref']}: accuracy {baseline['accuracy']:.3f} "
            "on the same test split"
        )
        candidate_predicted = [classes[i] for i in evaluated.probabilities.argmax(axis=1)]
        comparison = _paired(settings, data.test_labels(), candidate_predicted, production_predicted, classes)
    reference = reference_check(settings, evaluated, production, log)
    decision = gating.decide(
        evaluated.metrics, settings.gate, baseline, comparison, evaluated.calibration, reference
    )
    return Gated(evaluated, baseline, decision)


def register(settings: Settings, gated: Gated, *, actor: str | None, reason: str, log: Log) -> Registered:
    """Write the candidate (model, evidence, report), then register it in testing if the gate passed.

    Raises CheckFailed (exit 3) when the gate failed: the run folder keeps the evidence, nothing is
    registered.
    """
    from registry import open_registry
    from training import gate as gating
    from training.candidate import write_candidate

    candidate = write_candidate(settings, gated, log)
    decision = gated.decision
    log(f"gate {'passed' if decision['passed'] else 'FAILED'}:")
    for line in gating.describe(decision):
        log(line)
    if not decision["passed"]:
        failed = CheckFailed(
            f"gate failed: {'; '.join(decision['reasons'])}; nothing registered (report: {candidate.report})"
        )
        # The CLI prints this with --json, so Jenkins gets the decision even on exit 3.
        failed.summary = candidate.summary(None, None, str(candidate.report))
        raise failed
    version = open_registry(settings).register(
        candidate.folder, candidate.manifest, actor=actor or default_actor(), reason=reason
    )
    return Registered(candidate, version)
