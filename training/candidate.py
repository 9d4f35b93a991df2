"""Shared by train and retrain: prepare the data, then evaluate, gate, report and register a candidate."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlops.actor import default_actor
from mlops.errors import CheckFailed, MlopsError
from mlops.preprocessing import PreprocessSpec
from mlops.settings import Settings
from training.data import Dataset, Item, load_dataset
from training.split import split_dataset, split_rule, write_test_split

MAX_SKIPPED_LINES = 20


@dataclass
class Prepared:
    """A checked dataset, its split, and tf.data pipelines for train and val."""

    dataset: Dataset
    splits: dict[str, list[Item]]
    spec: PreprocessSpec
    tf_data: dict


def load_checked(settings: Settings, data_uri: str, log) -> Dataset:
    """Load a dataset and report what it holds and every file skipped."""
    dataset = load_dataset(data_uri, settings.home / "cache")
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


def prepare_data(settings: Settings, data_uri: str | Dataset, spec: PreprocessSpec, log) -> Prepared:
    """Checked dataset → content-hash split → tf.data pipelines (train shuffled with the seed)."""
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

    def pipeline(name: str, seed: int | None):
        items = splits[name]
        return image_dataset(
            [dataset.path_of(i) for i in items], [index[i.label] for i in items], spec, cfg.batch_size, seed
        )

    tf_data = {"train": pipeline("train", cfg.seed), "val": pipeline("val", None)}
    return Prepared(dataset, splits, spec, tf_data)


def production_baseline(settings: Settings, prepared: Prepared, log) -> dict | None:
    """{"ref", "version", "accuracy"} of production:current on THIS test split, or None if empty."""
    import keras

    from registry import NotFoundError, open_registry
    from training.evaluate import evaluate_model

    registry = open_registry(settings)
    try:
        local = registry.fetch("production:current")
    except NotFoundError:
        return None
    model = keras.models.load_model(local.model_path, compile=False)
    spec = PreprocessSpec.from_dict(local.manifest["preprocessing"])
    test = prepared.splits["test"]
    metrics = evaluate_model(
        model,
        local.manifest["classes"],
        [prepared.dataset.path_of(i) for i in test],
        [i.label for i in test],
        spec,
    )
    ref = f"production:{local.version}"
    log(f"production baseline {ref}: accuracy {metrics['accuracy']:.3f} on the same test split")
    return {"ref": ref, "version": local.version, "accuracy": metrics["accuracy"]}


def _run_dir(settings: Settings, mode: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    run = settings.runs_dir / f"{stamp}-{mode}"
    (run / "candidate").mkdir(parents=True)
    return run


def build_manifest(
    settings: Settings, prepared: Prepared, params: dict, metrics: dict, gate: dict, parent: dict | None
) -> dict:
    """The training-side manifest fields (docs/manifest.md); the registry adds the rest."""
    from training.lineage import code_info, frameworks

    cfg, ds = settings.train, prepared.dataset
    return {
        "name": settings.registry.model_name,
        "model_file": "model.keras",
        "classes": list(ds.classes),
        "preprocessing": prepared.spec.to_dict(),
        "code": code_info(),
        "dataset": {
            "uri": ds.uri,
            "fingerprint": ds.fingerprint,
            "class_counts": ds.class_counts,
            "split": {name: len(items) for name, items in prepared.splits.items()},
            "split_rule": split_rule(cfg.val_fraction, cfg.test_fraction),
            "skipped": ds.skipped,
        },
        "params": params,
        "frameworks": frameworks(),
        "metrics": metrics,
        "gate": gate,
        "parent": parent,
    }


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
    from training import gate as gating
    from training.evaluate import evaluate_model
    from training.reference_profile import build_reference_profile, write_reference_profile
    from training.report import write_report

    test = prepared.splits["test"]
    metrics = evaluate_model(
        model,
        prepared.dataset.classes,
        [prepared.dataset.path_of(i) for i in test],
        [i.label for i in test],
        prepared.spec,
    )
    log(f"test accuracy {metrics['accuracy']:.3f} on {metrics['n']} images")
    decision = gating.decide(metrics, settings.gate, production_baseline(settings, prepared, log))
    manifest = build_manifest(settings, prepared, params, metrics, decision, parent)

    run = _run_dir(settings, params["mode"])
    folder = run / "candidate"
    model.save(folder / "model.keras")
    write_test_split(test, folder / "test_split.json")
    # What production monitoring compares live traffic with (training/reference_profile.py).
    reference = build_reference_profile(
        model, prepared.dataset.classes, [prepared.dataset.path_of(i) for i in test], prepared.spec
    )
    manifest["reference"] = write_reference_profile(folder, reference)
    report = write_report(folder, manifest, history)
    (run / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str) + "\n")

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
    }
