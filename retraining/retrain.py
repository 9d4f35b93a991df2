"""Retraining: validate new data, then fine-tune the production model (else the latest testing one) on it."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from core.errors import CheckFailed, MlopsError
from core.preprocessing import PreprocessSpec
from core.settings import Settings
from training.train import Log, log_stderr

if TYPE_CHECKING:
    from registry.manifest import Dataset as RecordedDataset

PARENT_REFS = ("production:current", "testing:latest")


def find_parent(registry) -> tuple[str, object]:
    """(ref, LocalModel) of production:current, else testing:latest, else a clear error."""
    from registry import NotFoundError

    for ref in PARENT_REFS:
        try:
            return ref, registry.fetch(ref)
        except NotFoundError:
            continue
    raise MlopsError(
        f"nothing to retrain: registry {registry.uri} has no production or testing model; "
        "train one first (mlops train --data DIR)"
    )


def _skipped(message: str, parent_info: dict, dataset: dict) -> dict:
    """The summary of a retrain that had nothing new to learn from."""
    return {
        "skipped": True, "message": message, "ref": None, "version": None, "metrics": None,
        "gate": None, "report": None, "parent": parent_info, "dataset": dataset,
    }  # fmt: skip


def _same_revision(snapshot, parent_dataset: RecordedDataset) -> bool:
    """Whether the snapshot is the very revision (commit, generations) the parent was trained on."""
    old = parent_dataset.source
    return bool(snapshot.revision) and (snapshot.kind, snapshot.revision) == (old.kind, old.revision)


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
    failed.summary = {  # type: ignore[attr-defined]  # printed with --json, as for a failed gate
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
    log: Log = log_stderr,
) -> dict:
    """Validate the data, fine-tune the parent on it, gate, register with the parent recorded.

    Returns {"skipped": True, ...} when the data is the parent's (same revision, or same images) and
    not force; raises CheckFailed (exit 3) when data validation or the gate says no.
    """
    from training.candidate import preflight
    from training.tf_config import read_cluster

    if read_cluster().is_chief:  # only the chief writes to the registry
        preflight(settings, actor, log)  # before TensorFlow loads: a doomed run fails in a second
    from registry import open_registry
    from training.candidate import check_data, load_checked, prepare_data, resolve_logged
    from training.split import split_rule
    from training.train import fit_and_register

    cfg = settings.train
    registry = open_registry(settings)
    ref, parent = find_parent(registry)
    manifest = parent.manifest
    area = ref.split(":")[0]
    parent_info = {"ref": f"{area}:{parent.version}", "version": parent.version, "area": area}
    log(f"parent {parent_info['ref']} (from {ref})")
    parent_dataset = manifest.dataset
    old_fingerprint = parent_dataset.fingerprint or ""
    snapshot = resolve_logged(settings, data_uri, log)
    facts = {"uri": snapshot.uri, "revision": snapshot.revision}
    if _same_revision(snapshot, parent_dataset) and not force:
        message = (
            f"data unchanged since {parent_info['ref']}: it was trained on this very revision "
            f"({snapshot.revision}); nothing to retrain (use --force to retrain anyway)"
        )
        return _skipped(message, parent_info, {**facts, "fingerprint": old_fingerprint})
    from training.distribute import setup

    distribution = setup(cfg, log)  # before any other TensorFlow work (a snapshot is read with it)
    dataset = load_checked(settings, snapshot, log)
    facts["fingerprint"] = dataset.fingerprint
    if dataset.fingerprint == old_fingerprint and not force:  # unchanged data never waits for TensorFlow
        revision = f"revision {snapshot.revision} holds " if snapshot.revision else ""
        message = (
            f"data unchanged since {parent_info['ref']}: {revision}the same images and labels "
            f"(fingerprint {old_fingerprint[:12]}); nothing to retrain (use --force to retrain anyway)"
        )
        return _skipped(message, parent_info, facts)
    # The parent's input shape wins: fine-tuning cannot change the image size. The new data is
    # described as the parent sees it.
    if manifest.preprocessing is None:
        raise MlopsError(f"{parent_info['ref']} records no preprocessing; retrain a version that does")
    spec = PreprocessSpec(manifest.preprocessing.image_size, manifest.preprocessing.channels)
    statistics, check = check_data(settings, dataset, spec, (parent_info["ref"], manifest), "retrain", log)
    if check.stopped:
        raise _refuse(registry, snapshot, dataset, check, parent_info, actor)
    parent_rule = parent_dataset.split_rule
    if parent_rule and parent_rule != split_rule(cfg.val_fraction, cfg.test_fraction):
        log(
            f"warning: split rule changed since {parent_info['ref']} ({parent_rule}); "
            "the test split is not the parent's"
        )
    import keras

    keras.utils.set_random_seed(cfg.seed)
    prepared = prepare_data(settings, dataset, spec, log, distribution)
    prepared.statistics, prepared.check = statistics, check
    with distribution.scope():
        model = keras.models.load_model(parent.model_path, compile=False)
    log(
        f"fine-tuning {parent_info['ref']} for up to {cfg.fine_tune_epochs} epochs "
        f"at learning rate {cfg.fine_tune_learning_rate}"
    )
    params = {
        **dataclasses.asdict(cfg),
        **spec.to_dict(),
        "mode": "retrain",
        "architecture": manifest.params.architecture or cfg.architecture,
        **distribution.params(cfg.batch_size),
    }
    return fit_and_register(
        settings,
        prepared,
        model,
        epochs=cfg.fine_tune_epochs,
        learning_rate=cfg.fine_tune_learning_rate,
        params=params,
        parent=parent_info,
        actor=actor,
        reason=reason or f"mlops retrain on {data_uri} from {parent_info['ref']}",
        log=log,
        distribution=distribution,
    )
