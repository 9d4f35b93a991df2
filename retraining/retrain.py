"""Retraining: fine-tune the production model (else the latest testing one) on new data."""

from __future__ import annotations

import dataclasses

from core.errors import MlopsError
from core.preprocessing import PreprocessSpec
from core.settings import Settings
from training.train import Log, log_stderr

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


def retrain_and_register(
    settings: Settings,
    data_uri: str,
    *,
    force: bool = False,
    actor: str | None = None,
    reason: str = "",
    log: Log = log_stderr,
) -> dict:
    """Fine-tune the parent on data_uri, gate, register with the parent recorded; returns the summary.

    With the parent's dataset fingerprint unchanged and not force: returns {"skipped": True, ...}.
    """
    from training.candidate import preflight

    preflight(settings, actor, log)  # before TensorFlow loads: a doomed run fails in a second
    import keras

    from registry import open_registry
    from training.candidate import load_checked, prepare_data
    from training.split import split_rule
    from training.train import fit_and_register

    cfg = settings.train
    ref, parent = find_parent(open_registry(settings))
    manifest = parent.manifest
    area = ref.split(":")[0]
    parent_info = {"ref": f"{area}:{parent.version}", "version": parent.version, "area": area}
    log(f"parent {parent_info['ref']} (from {ref})")
    dataset = load_checked(settings, data_uri, log)
    old = manifest.get("dataset", {}).get("fingerprint")
    if dataset.fingerprint == old and not force:
        message = (
            f"data unchanged since {parent_info['ref']} (fingerprint {old[:12]}); nothing to "
            "retrain (use --force to retrain anyway)"
        )
        return {
            "skipped": True,
            "message": message,
            "ref": None,
            "version": None,
            "metrics": None,
            "gate": None,
            "report": None,
            "parent": parent_info,
        }
    if list(manifest["classes"]) != list(dataset.classes):
        raise MlopsError(
            f"classes differ: {parent_info['ref']} has {manifest['classes']}, the data has "
            f"{dataset.classes}; train from scratch (mlops train) when the classes change"
        )
    parent_rule = manifest.get("dataset", {}).get("split_rule")
    if parent_rule and parent_rule != split_rule(cfg.val_fraction, cfg.test_fraction):
        log(
            f"warning: split rule changed since {parent_info['ref']} ({parent_rule}); "
            "the test split is not the parent's"
        )
    keras.utils.set_random_seed(cfg.seed)
    # The parent's input shape wins: fine-tuning cannot change the image size.
    spec = PreprocessSpec.from_dict(manifest["preprocessing"])
    prepared = prepare_data(settings, dataset, spec, log)
    model = keras.models.load_model(parent.model_path, compile=False)
    log(
        f"fine-tuning {parent_info['ref']} for up to {cfg.fine_tune_epochs} epochs "
        f"at learning rate {cfg.fine_tune_learning_rate}"
    )
    params = {
        **dataclasses.asdict(cfg),
        **spec.to_dict(),
        "mode": "retrain",
        "architecture": manifest.get("params", {}).get("architecture", cfg.architecture),
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
    )
