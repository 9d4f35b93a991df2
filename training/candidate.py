"""The candidate: its manifest (the training-side lineage) and its run folder, written for the registry."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.settings import Settings
from training.calibration import apply_temperature
from training.split import split_rule, write_test_split
from training.stage_results import Candidate, Evaluated, Gated, Split

if TYPE_CHECKING:
    from registry.manifest import Deferral, Manifest

GENERATIONS_FILE = "dataset_generations.json"  # gs:// datasets: every object read and its generation


def _run_dir(settings: Settings, mode: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    run = settings.runs_dir / f"{stamp}-{mode}"
    (run / "candidate").mkdir(parents=True)
    return run


def build_manifest(
    settings: Settings,
    prepared: Split,
    params: dict,
    metrics: dict,
    gate: dict,
    parent: dict | None,
    calibration: dict | None = None,
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
            "validation": prepared.check.to_dict(),
        },
        "params": params,
        "frameworks": frameworks(),
        "metrics": metrics,
        "gate": gate,
        "calibration": calibration,
        "parent": parent,
    })  # fmt: skip


def _deferral(settings: Settings, evaluated: Evaluated, temperature: float | None) -> Deferral:
    """The abstention threshold, chosen on the validation split (training/deferral.py)."""
    from training.deferral import choose_threshold

    classes = evaluated.trained.split.dataset.classes
    probabilities = evaluated.val_probabilities
    indices = evaluated.val_labels
    if probabilities is None or indices is None:
        probabilities, indices = np.zeros((0, len(classes))), np.zeros(0, dtype=int)
    if temperature is not None and len(probabilities):  # the threshold applies to what the API serves
        probabilities = apply_temperature(probabilities, temperature)
    labels = [classes[int(i)] for i in indices]
    return choose_threshold(probabilities, classes, labels, settings.api.target_accuracy, "val")


def write_candidate(settings: Settings, gated: Gated, log) -> Candidate:
    """The run folder: model, test split, golden examples, reference profile, report and manifest."""
    from registry.manifest import Reference, load
    from training.deferral import on_split
    from training.golden import write_golden
    from training.model_card import write_model_card
    from training.reference_profile import build_reference_profile, write_reference_profile
    from training.report import write_report
    from training.subgroups import subgroup_metrics

    trained = gated.evaluated.trained
    prepared, model, params = trained.split, trained.model, trained.params
    test, classes = prepared.splits["test"], prepared.dataset.classes
    files, labels, probs = prepared.test_files(), prepared.test_labels(), gated.evaluated.probabilities
    # The API serves calibrated probabilities (softmax(log p / T)): what monitoring compares live
    # confidences with, and what the deferral threshold is applied to, must be those too.
    temperature = (gated.evaluated.calibration or {}).get("temperature")
    served = apply_temperature(probs, temperature) if temperature is not None and len(probs) else probs
    manifest = build_manifest(
        settings, prepared, params, gated.evaluated.metrics, gated.decision, trained.parent,
        gated.evaluated.calibration,
    )  # fmt: skip

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
    reference = build_reference_profile(model, classes, files, prepared.spec, temperature=temperature)
    summary = write_reference_profile(folder, reference)
    manifest = manifest.evolve(reference=load(Reference, summary, "manifest.reference"))
    # Per-subgroup scores (DICOM tags, `<key>=<value>` folders): training/subgroups.py.
    subgroups = subgroup_metrics(files, [i.path for i in test], labels, probs, classes)
    manifest = manifest.evolve(metrics=replace(manifest.metrics, subgroups=subgroups))
    if subgroups:
        log(f"subgroups: {len(subgroups)} on the test split ({sum(not s.too_few for s in subgroups)} scored)")
    deferral = on_split(_deferral(settings, gated.evaluated, temperature), served, classes, labels)
    manifest = manifest.evolve(deferral=deferral)
    if manifest.deferral is not None:
        d = manifest.deferral
        log(
            f"deferral: threshold {d.threshold:.3f} keeps {d.coverage:.0%} of the validation split at "
            f"accuracy {d.accuracy_kept if d.accuracy_kept is not None else 0:.3f} "
            f"(target {d.target_accuracy})" + ("" if d.reached else ": target not reached, all deferred")
        )
    report = write_report(folder, manifest, trained.history)
    write_model_card(folder, manifest, settings)
    (run / "manifest.json").write_text(json.dumps(manifest.to_dict(annotations=False), indent=1) + "\n")
    return Candidate(gated, manifest, run, folder, report)
