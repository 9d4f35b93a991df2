"""Training from scratch: the stages of training/stages.py, with a newly built model as the start."""

from __future__ import annotations

import dataclasses

from core.preprocessing import PreprocessSpec
from core.settings import Settings
from training import stages
from training.fit import Log
from training.stage_results import Start
from training.tf_config import read_cluster


def train_and_register(
    settings: Settings,
    data_uri: str,
    *,
    actor: str | None = None,
    reason: str = "",
    log: Log = stages.log_stderr,
) -> dict:
    """Train from scratch on data_uri, evaluate, gate, register in testing; returns the summary.

    Raises CheckFailed (exit 3) when the gate fails; nothing is registered then.
    """
    from training.distribute import setup

    reason = reason or f"mlops train on {data_uri}"
    if read_cluster().is_chief:  # only the chief writes to the registry
        stages.preflight(settings, actor, log)  # before TensorFlow loads: a doomed run fails in a second
    cfg = settings.train
    distribution = setup(cfg, log)  # before any other TensorFlow work: it fixes the devices
    import keras

    from training.model import build_model

    keras.utils.set_random_seed(cfg.seed)
    spec = PreprocessSpec(image_size=cfg.image_size, channels=cfg.channels)
    dataset = stages.load(settings, stages.resolve(settings, data_uri, log), log)
    # From scratch, drift from production's data is only reported: the new model is judged on its own.
    reference = stages.production_reference(settings)
    data = stages.split(
        settings, stages.validate(settings, dataset, spec, reference, "train", log), log, distribution
    )
    with distribution.scope():
        model = build_model(cfg.architecture, cfg.image_size, cfg.channels, len(dataset.classes), cfg.weights)
    log(
        f"training {cfg.architecture} from scratch: {model.count_params():,} parameters, "
        f"up to {cfg.epochs} epochs"
    )
    params = {**dataclasses.asdict(cfg), "mode": "train", **distribution.params(cfg.batch_size)}
    start = Start(model, cfg.epochs, cfg.learning_rate, params, parent=None)
    trained = stages.train(settings, data, start, distribution, log)
    if not distribution.is_chief:  # the chief alone evaluates and registers: one candidate, one version
        return stages.worker_summary(distribution, log)
    gated = stages.gate(settings, stages.evaluate(trained, log, settings.gate.confidence), log)
    return stages.register(settings, gated, actor=actor, reason=reason, log=log).summary()
