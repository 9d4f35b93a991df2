"""Shared by train and retrain: prepare the data, then evaluate, gate, report and register a candidate."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.actor import default_actor
from core.errors import CheckFailed, MlopsError
from core.preprocessing import PreprocessSpec
from core.settings import Settings
from training.data import Dataset, Item, scan_snapshot
from training.data_validation import DataCheck, validate
from training.sources import Snapshot, resolve_source
from training.split import split_dataset, split_rule, write_test_split

if TYPE_CHECKING:
    from registry.manifest import Manifest
    from training.distribute import Distribution

MAX_SKIPPED_LINES = 20
GENERATIONS_FILE = "dataset_generations.json"  # gs:// datasets: every object read and its generation


@dataclass
class Prepared:
    """A checked dataset, its split, and tf.data pipelines for train and val."""

    dataset: Dataset
    splits: dict[str, list[Item]]
    spec: PreprocessSpec
    tf_data: dict
    statistics: dict[str, Any] | None = None  # training.dataset_stats.summarize of the dataset
    check: DataCheck | None = None  # data validation against the reference model's training data
    steps: dict[str, int] | None = None  # batches per epoch when the inputs repeat (multi-worker)


def preflight(settings: Settings, actor: str | None, log) -> None:
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


def resolve_logged(settings: Settings, data_uri: str, log) -> Snapshot:
    """Resolve --data to a local snapshot and say which revision it is."""
    snapshot = resolve_source(data_uri, settings.cache_dir, settings.sources.git_timeout_s)
    log(f"dataset source: {snapshot.describe()}")
    return snapshot


def load_checked(settings: Settings, data: str | Snapshot, log) -> Dataset:
    """Resolve (unless given a snapshot) and scan a dataset; report what it holds and every file skipped."""
    from training.snapshot import is_snapshot, open_snapshot

    snapshot = data if isinstance(data, Snapshot) else resolve_logged(settings, data, log)
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


def check_data(
    settings: Settings,
    dataset: Dataset,
    spec: PreprocessSpec,
    reference: tuple[str, Manifest] | None,
    mode: str,
    log,
) -> tuple[dict[str, Any], DataCheck]:
    """The dataset's statistics (images as a model with SPEC sees them) and its validation against the
    reference version's training data."""
    from training.dataset_stats import summarize

    # A TFRecord snapshot holds no image files to sample: the statistics it stored stand in.
    stored = dataset.records.statistics if dataset.records is not None else None
    statistics = stored or summarize(dataset, settings.validation.stats_sample, spec)
    check = validate(dataset, statistics, reference, settings.validation, mode)
    for line in check.lines():
        log(line)
    return statistics, check


def production_reference(settings: Settings) -> tuple[str, Manifest] | None:
    """("production:N", manifest) of the current production model, or None when production is empty."""
    from registry import NotFoundError, open_registry

    try:
        version = open_registry(settings).resolve("production:current")
    except NotFoundError:
        return None
    return version.ref, version.manifest


def prepare_data(
    settings: Settings,
    data_uri: str | Dataset,
    spec: PreprocessSpec,
    log,
    distribution: Distribution | None = None,
) -> Prepared:
    """Checked dataset → content-hash split → tf.data pipelines (train shuffled with the seed).

    A TFRecord snapshot (training/snapshot.py) feeds its stored tensors instead of decoding files.
    With several workers the inputs repeat and an epoch is a fixed number of steps.
    """
    from training.inputs import image_dataset

    cfg = settings.train
    dataset = data_uri if isinstance(data_uri, Dataset) else load_checked(settings, data_uri, log)
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
    return Prepared(dataset, splits, spec, tf_data, steps=steps)


def production_baseline(settings: Settings, prepared: Prepared, log) -> dict | None:
    """Production:current on THIS test split: {"ref", "version", "accuracy", "metrics"}, or None if empty."""
    import keras

    from registry import NotFoundError, open_registry
    from training.evaluate import evaluate_model

    registry = open_registry(settings)
    try:
        local = registry.fetch("production:current")
    except NotFoundError:
        return None
    model = keras.models.load_model(local.model_path, compile=False)
    recorded = local.manifest.preprocessing
    if recorded is None:
        raise MlopsError(f"production:{local.version} records no preprocessing; it cannot be a baseline")
    spec = PreprocessSpec(recorded.image_size, recorded.channels)
    test = prepared.splits["test"]
    metrics = evaluate_model(
        model,
        list(local.manifest.classes),
        [prepared.dataset.path_of(i) for i in test],
        [i.label for i in test],
        spec,
    )
    ref = f"production:{local.version}"
    log(f"production baseline {ref}: accuracy {metrics['accuracy']:.3f} on the same test split")
    # The full metrics too: `mlops ui` shows candidate and production side by side on this split.
    return {"ref": ref, "version": local.version, "accuracy": metrics["accuracy"], "metrics": metrics}


def _run_dir(settings: Settings, mode: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    run = settings.runs_dir / f"{stamp}-{mode}"
    (run / "candidate").mkdir(parents=True)
    return run


def build_manifest(
    settings: Settings, prepared: Prepared, params: dict, metrics: dict, gate: dict, parent: dict | None
) -> Manifest:
    """The training-side manifest fields (docs/manifest.md), checked; the registry adds the rest."""
    from registry.manifest import require_lineage
    from training.lineage import code_info, frameworks

    cfg, ds = settings.train, prepared.dataset
    source = ds.source.lineage() if ds.source else {"kind": "folder", "uri": ds.uri, "revision": None}
    if ds.source and ds.source.generations is not None:
        source["generations_file"] = GENERATIONS_FILE
    return require_lineage({
        "name": settings.registry.model_name,
        "model_file": "model.keras",
        "classes": list(ds.classes),
        "preprocessing": prepared.spec.to_dict(),
        "code": code_info(),
        "dataset": {
            "uri": ds.uri,
            "source": source,
            "fingerprint": ds.fingerprint,
            "class_counts": ds.class_counts,
            "split": {name: len(items) for name, items in prepared.splits.items()},
            "split_rule": split_rule(cfg.val_fraction, cfg.test_fraction),
            "skipped": ds.skipped,
            "statistics": prepared.statistics,
            "validation": prepared.check.to_dict() if prepared.check else None,
        },
        "params": params,
        "frameworks": frameworks(),
        "metrics": metrics,
        "gate": gate,
        "parent": parent,
    })  # fmt: skip


def finish_candidate(
    settings: Settings,
    prepared: Prepared,
    model,
    history: dict,
    *,
    params: dict,
    parent: dict | None,
    actor: str | None,
    reason: str,
    log,
) -> dict:
    """Evaluate on the test split, gate, write report + files, register if the gate passes."""
    from registry import open_registry
    from registry.manifest import Reference, load, to_json
    from training import gate as gating
    from training.evaluate import metrics_from_probabilities, predict_files
    from training.golden import write_golden
    from training.reference_profile import build_reference_profile, write_reference_profile
    from training.report import write_report

    test, classes = prepared.splits["test"], prepared.dataset.classes
    files, labels = [prepared.dataset.path_of(i) for i in test], [i.label for i in test]
    probs = predict_files(model, files, prepared.spec)
    metrics = metrics_from_probabilities(probs, classes, labels)
    log(f"test accuracy {metrics['accuracy']:.3f} on {metrics['n']} images")
    decision = gating.decide(metrics, settings.gate, production_baseline(settings, prepared, log))
    manifest = build_manifest(settings, prepared, params, metrics, decision, parent)

    run = _run_dir(settings, params["mode"])
    folder = run / "candidate"
    model.save(folder / "model.keras")
    write_test_split(test, folder / "test_split.json")
    per_class = settings.model_tests.golden_per_class
    kept = write_golden(folder, files, [i.path for i in test], labels, probs, classes, per_class)
    log(f"golden examples: {kept} test images kept with the version (up to {per_class} per class)")
    if prepared.dataset.source and prepared.dataset.source.generations is not None:
        generations = prepared.dataset.source.generations
        (folder / GENERATIONS_FILE).write_text(json.dumps(generations, indent=0, sort_keys=True) + "\n")
    # What production monitoring compares live traffic with (training/reference_profile.py).
    reference = build_reference_profile(
        model, prepared.dataset.classes, [prepared.dataset.path_of(i) for i in test], prepared.spec
    )
    summary = write_reference_profile(folder, reference)
    manifest = manifest.evolve(reference=load(Reference, summary, "manifest.reference"))
    report = write_report(folder, manifest, history)
    (run / "manifest.json").write_text(json.dumps(manifest.to_dict(annotations=False), indent=1) + "\n")

    log(f"gate {'passed' if decision['passed'] else 'FAILED'}:")
    for line in gating.describe(decision):
        log(line)
    if not decision["passed"]:
        failed = CheckFailed(
            f"gate failed: {'; '.join(decision['reasons'])}; nothing registered (report: {report})"
        )
        # The CLI prints this with --json, so Jenkins gets the decision even on exit 3.
        failed.summary = {  # type: ignore[attr-defined]
            "ref": None, "version": None, "metrics": metrics, "gate": decision,
            "report": str(report), "run_dir": str(run), "parent": parent,
            "dataset": _dataset_facts(manifest), "validation": to_json(manifest.dataset.validation),
        }  # fmt: skip
        raise failed
    version = open_registry(settings).register(
        folder, manifest, actor=actor or default_actor(), reason=reason
    )
    return {
        "ref": version.ref,
        "version": version.version,
        "metrics": metrics,
        "gate": decision,
        "report": f"{version.uri}/report.html",
        "run_dir": str(run),
        "parent": parent,
        "dataset": _dataset_facts(manifest),
        "validation": to_json(manifest.dataset.validation),
    }


def _dataset_facts(manifest: Manifest) -> dict:
    """What the summary says about the data: where it came from, its revision and fingerprint."""
    dataset = manifest.dataset
    return {"uri": dataset.uri, "revision": dataset.source.revision, "fingerprint": dataset.fingerprint}
