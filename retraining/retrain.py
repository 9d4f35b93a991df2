"""Retraining: the stages of training/stages.py, starting from the production model (else the latest
testing one) and validating the new data against the data it learned from."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from core.errors import CheckFailed, MlopsError
from core.preprocessing import PreprocessSpec
from core.settings import Settings, TrainSettings
from training import stages
from training.data import Dataset
from training.fit import Log
from training.sources import Snapshot
from training.stage_results import Start
from training.tf_config import read_cluster

if TYPE_CHECKING:
    from registry.manifest import Dataset as RecordedDataset
    from registry.manifest import Manifest

PARENT_REFS = ("production:current", "testing:latest")


def find_parent(registry, log: Log) -> tuple[Any, dict[str, Any]]:
    """The model to fine-tune and its {"ref", "version", "area"}: production:current, else testing:latest."""
    from registry import NotFoundError

    for ref in PARENT_REFS:
        try:
            parent = registry.fetch(ref)
        except NotFoundError:
            continue
        area = ref.split(":")[0]
        parent_info = {"ref": f"{area}:{parent.version}", "version": parent.version, "area": area}
        log(f"parent {parent_info['ref']} (from {ref})")
        return parent, parent_info
    raise MlopsError(
        f"nothing to retrain: registry {registry.uri} has no production or testing model; "
        "train one first (mlops train --data DIR)"
    )


def _skipped(message: str, parent_info: dict, snapshot: Snapshot, parent_dataset: RecordedDataset) -> dict:
    """The summary of a retrain that had nothing new to learn from."""
    dataset = {
        "uri": snapshot.uri,
        "revision": snapshot.revision,
        "fingerprint": parent_dataset.fingerprint or "",
    }
    return {
        "skipped": True, "message": message, "ref": None, "version": None, "metrics": None,
        "gate": None, "report": None, "parent": parent_info, "dataset": dataset,
    }  # fmt: skip


def _same_revision(snapshot: Snapshot, parent_dataset: RecordedDataset, parent_ref: str) -> str | None:
    """Why there is nothing to retrain when the snapshot is the very revision (commit, generations) the
    parent was trained on; None when it is not."""
    old = parent_dataset.source
    if not snapshot.revision or (snapshot.kind, snapshot.revision) != (old.kind, old.revision):
        return None
    return (
        f"data unchanged since {parent_ref}: it was trained on this very revision "
        f"({snapshot.revision}); nothing to retrain (use --force to retrain anyway)"
    )


def _same_images(
    snapshot: Snapshot, dataset: Dataset, parent_dataset: RecordedDataset, parent_ref: str
) -> str | None:
    """Why there is nothing to retrain when the data holds the parent's images and labels (fingerprint)."""
    old_fingerprint = parent_dataset.fingerprint or ""
    if dataset.fingerprint != old_fingerprint:
        return None
    revision = f"revision {snapshot.revision} holds " if snapshot.revision else ""
    return (
        f"data unchanged since {parent_ref}: {revision}the same images and labels "
        f"(fingerprint {old_fingerprint[:12]}); nothing to retrain (use --force to retrain anyway)"
    )


def _warn_split_rule(cfg: TrainSettings, parent_dataset: RecordedDataset, parent_ref: str, log: Log) -> None:
    """A changed split rule means the test split is not the parent's: say so."""
    from training.split import split_rule

    parent_rule = parent_dataset.split_rule
    if parent_rule and parent_rule != split_rule(cfg.val_fraction, cfg.test_fraction):
        log(
            f"warning: split rule changed since {parent_ref} ({parent_rule}); "
            "the test split is not the parent's"
        )


def _params(
    cfg: TrainSettings, spec: PreprocessSpec, parent_manifest: Manifest, distribution
) -> dict[str, Any]:
    """The manifest's params: the settings, the parent's input shape and architecture, the distribution."""
    return {
        **dataclasses.asdict(cfg),
        **spec.to_dict(),
        "mode": "retrain",
        "architecture": parent_manifest.params.architecture or cfg.architecture,
        **distribution.params(cfg.batch_size),
    }


def _refuse(registry, snapshot, dataset, check, parent_info: dict, actor: str | None) -> CheckFailed:
    """Record the refusal in the audit log and build the exit-3 error (nothing was trained)."""
    from core.actor import default_actor

    what = {"uri": snapshot.uri, "revision": snapshot.revision, "fingerprint": dataset.fingerprint}
    registry.record_refusal(
        "retrain", actor or default_actor(), "; ".join(check.stops), dataset=what, parent=parent_info["ref"]
    )
    failed = CheckFailed(
        f"data validation stopped the retraining on {snapshot.describe()}: {' | '.join(check.stops)}. "
        "Nothing was trained or registered (recorded in the audit log)"
    )
    failed.summary = {  # printed with --json, as for a failed gate
        "ref": None, "version": None, "metrics": None, "gate": None, "report": None,
        "parent": parent_info, "dataset": what, "validation": check.to_dict(),
    }  # fmt: skip
    return failed


def retrain_and_register(
    settings: Settings,
    data_uri: str,
    *,
    force: bool = False,
    actor: str | None = None,
    reason: str = "",
    log: Log = stages.log_stderr,
) -> dict:
    """Validate the data, fine-tune the parent on it, gate, register with the parent recorded.

    Returns {"skipped": True, ...} when the data is the parent's (same revision, or same images) and
    not force; raises CheckFailed (exit 3) when data validation or the gate says no.
    """
    if read_cluster().is_chief:  # only the chief writes to the registry
        stages.preflight(settings, actor, log)  # before TensorFlow loads: a doomed run fails in a second
    from registry import open_registry
    from training.distribute import setup

    cfg, registry = settings.train, open_registry(settings)
    parent, parent_info = find_parent(registry, log)
    parent_ref, parent_dataset = parent_info["ref"], parent.manifest.dataset
    reason = reason or f"mlops retrain on {data_uri} from {parent_ref}"
    snapshot = stages.resolve(settings, data_uri, log)
    if not force and (unchanged := _same_revision(snapshot, parent_dataset, parent_ref)):
        return _skipped(unchanged, parent_info, snapshot, parent_dataset)  # never waits for TensorFlow
    distribution = setup(cfg, log)  # before any other TensorFlow work (a snapshot is read with it)
    dataset = stages.load(settings, snapshot, log)
    if not force and (unchanged := _same_images(snapshot, dataset, parent_dataset, parent_ref)):
        return _skipped(unchanged, parent_info, snapshot, parent_dataset)
    # The parent's input shape wins: fine-tuning cannot change the image size. The new data is
    # described as the parent sees it.
    recorded = parent.manifest.preprocessing
    if recorded is None:
        raise MlopsError(f"{parent_ref} records no preprocessing; it cannot be fine-tuned")
    spec = PreprocessSpec(recorded.image_size, recorded.channels)
    checked = stages.validate(settings, dataset, spec, (parent_ref, parent.manifest), "retrain", log)
    import keras

    if not checked.check.stopped:  # the parent scores the pushed files: do they look mislabelled?
        scorer = keras.models.load_model(parent.model_path, compile=False)
        stages.check_labels(settings, checked, (parent_ref, scorer), parent.manifest.metrics.accuracy, log)
    if checked.check.stopped:
        raise _refuse(registry, snapshot, dataset, checked.check, parent_info, actor)
    _warn_split_rule(cfg, parent_dataset, parent_ref, log)

    keras.utils.set_random_seed(cfg.seed)
    data = stages.split(settings, checked, log, distribution)
    with distribution.scope():
        model = keras.models.load_model(parent.model_path, compile=False)
    epochs, rate = cfg.fine_tune_epochs, cfg.fine_tune_learning_rate
    log(f"fine-tuning {parent_ref} for up to {epochs} epochs at learning rate {rate}")
    start = Start(model, epochs, rate, _params(cfg, spec, parent.manifest, distribution), parent_info)
    trained = stages.train(settings, data, start, distribution, log)
    if not distribution.is_chief:  # the chief alone evaluates and registers: one candidate, one version
        return stages.worker_summary(distribution, log)
    gated = stages.gate(settings, stages.evaluate(trained, log, settings.gate.confidence), log)
    return stages.register(settings, gated, actor=actor, reason=reason, log=log).summary()
