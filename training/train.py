"""Training from scratch: dataset → split → fit (early stopping on val) → candidate."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from core.preprocessing import PreprocessSpec
from core.settings import Settings

if TYPE_CHECKING:
    from training.candidate import Prepared
    from training.distribute import Distribution

Log = Callable[[str], None]


def log_stderr(message: str) -> None:
    """Progress goes to stderr so stdout stays clean for --json."""
    print(message, file=sys.stderr, flush=True)


def _epoch_logger(log: Log, epochs: int):
    import keras

    class EpochLine(keras.callbacks.Callback):
        """One line per epoch instead of Keras' progress bar (unreadable in CI logs)."""

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            log(
                f"epoch {epoch + 1}/{epochs}: loss {logs.get('loss', float('nan')):.4f} "
                f"acc {logs.get('accuracy', float('nan')):.3f} "
                f"val_loss {logs.get('val_loss', float('nan')):.4f} "
                f"val_acc {logs.get('val_accuracy', float('nan')):.3f} "
                f"({time.perf_counter() - self.started:.1f}s)"
            )

    return EpochLine()


def fit(
    model,
    data: dict,
    *,
    epochs: int,
    learning_rate: float,
    patience: int,
    log: Log,
    steps: dict[str, int] | None = None,
    distributed: bool = False,
) -> dict:
    """Compile and fit on data["train"], early-stopping on data["val"] (never the test split).

    steps: {"train", "val"} batches per epoch when the inputs repeat (multi-worker); None: one pass.
    distributed: the model lives in a Mirrored or MultiWorkerMirrored strategy's scope.
    """
    import keras

    from training.model import compile_model

    compile_model(model, learning_rate)
    if distributed:
        from training.distribute import prepare_distributed_fit

        prepare_distributed_fit(model, data["train"])
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=patience, restore_best_weights=True, verbose=0
    )
    history = model.fit(
        data["train"],
        validation_data=data["val"],
        epochs=epochs,
        steps_per_epoch=steps["train"] if steps else None,
        validation_steps=steps["val"] if steps else None,
        callbacks=[stop, _epoch_logger(log, epochs)],
        verbose=0,
        shuffle=False,  # the tf.data pipeline shuffles itself
    )
    return {key: [float(v) for v in values] for key, values in history.history.items()}


def train_and_register(
    settings: Settings, data_uri: str, *, actor: str | None = None, reason: str = "", log: Log = log_stderr
) -> dict:
    """Train from scratch on data_uri, evaluate, gate, register in testing; returns the summary.

    Raises CheckFailed (exit 3) when the gate fails; nothing is registered then.
    """
    from training.candidate import (
        check_data,
        load_checked,
        preflight,
        prepare_data,
        production_reference,
    )
    from training.distribute import setup
    from training.tf_config import read_cluster

    if read_cluster().is_chief:  # only the chief writes to the registry
        preflight(settings, actor, log)  # before TensorFlow loads: a doomed run fails in a second
    cfg = settings.train
    distribution = setup(cfg, log)  # before any other TensorFlow work: it fixes the devices
    import keras

    from training.model import build_model

    keras.utils.set_random_seed(cfg.seed)
    spec = PreprocessSpec(image_size=cfg.image_size, channels=cfg.channels)
    dataset = load_checked(settings, data_uri, log)
    # From scratch, drift from production's data is only reported: the new model is judged on its own.
    statistics, check = check_data(settings, dataset, spec, production_reference(settings), "train", log)
    prepared = prepare_data(settings, dataset, spec, log, distribution)
    prepared.statistics, prepared.check = statistics, check
    with distribution.scope():
        model = build_model(
            cfg.architecture, cfg.image_size, cfg.channels, len(prepared.dataset.classes), cfg.weights
        )
    log(
        f"training {cfg.architecture} from scratch: {model.count_params():,} parameters, "
        f"up to {cfg.epochs} epochs"
    )
    params = {**dataclasses.asdict(cfg), "mode": "train", **distribution.params(cfg.batch_size)}
    return fit_and_register(
        settings,
        prepared,
        model,
        epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        params=params,
        parent=None,
        actor=actor,
        reason=reason or f"mlops train on {data_uri}",
        log=log,
        distribution=distribution,
    )


def fit_and_register(
    settings: Settings,
    prepared: Prepared,
    model,
    *,
    epochs: int,
    learning_rate: float,
    params: dict,
    parent: dict | None,
    actor: str | None,
    reason: str,
    log: Log,
    distribution: Distribution,
) -> dict:
    """Fit, then evaluate, gate and register the candidate: the steps train and retrain share.

    Every worker fits (the collectives need them all); only the chief evaluates and registers, so a
    multi-worker run writes one candidate and one version.
    """
    from training.candidate import finish_candidate
    from training.distribute import cluster_errors, plain_copy

    started = time.perf_counter()
    patience = settings.train.early_stopping_patience
    with cluster_errors(distribution), distribution.scope():
        history = fit(
            model,
            prepared.tf_data,
            epochs=epochs,
            learning_rate=learning_rate,
            patience=patience,
            log=log,
            steps=prepared.steps,
            distributed=distribution.name != "one",
        )
    if not distribution.is_chief:
        return worker_summary(distribution, log)
    if distribution.name != "one" or distribution.mixed_precision:
        model = plain_copy(model)  # evaluated and saved outside the strategy, in float32
    params = {
        **params,
        "epochs_run": len(history.get("loss", [])),
        "train_seconds": round(time.perf_counter() - started, 2),
    }
    return finish_candidate(
        settings, prepared, model, history, params=params, parent=parent, actor=actor, reason=reason, log=log
    )


def worker_summary(distribution: Distribution, log: Log) -> dict:
    """What a non-chief worker reports: it trained, the chief evaluates and registers."""
    index, workers = distribution.cluster.index, distribution.cluster.workers
    message = f"worker {index} of {workers}: training done; the chief (worker 0) evaluates and registers"
    log(message)
    return {
        "skipped": True, "worker": index, "message": message, "ref": None, "version": None,
        "metrics": None, "gate": None, "report": None, "parent": None, "dataset": None,
    }  # fmt: skip
