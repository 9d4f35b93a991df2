"""Fitting a Keras model: early stopping on the val split (never the test split), one log line per epoch."""

from __future__ import annotations

import time
from collections.abc import Callable

Log = Callable[[str], None]


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
