"""Training throughput (images/s): tf.data pipeline vs naive per-file Python loader vs in-memory tensors.

All three feed the same small_cnn the same demo images, stored larger than the model input (like
real X-rays: 256 px files, 64 px model) so decoding and resizing cost what they cost in practice.
Two measurements per loader:
- input only: images/s delivered by the loader alone (no model), over all epochs;
- training: images/s of model.fit, steady state (the first epoch, which traces the graph, is
  left out; tf.data decodes in that epoch and serves later ones from its cache).
The naive loader (PIL open + resize per file in a Python generator, every epoch) is the baseline.

    .venv/bin/python benchmarks/bench_training.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _naive_batches(paths, labels, image_size: int, batch_size: int, epochs: int):
    """PIL open + resize per file, numpy batches, in one Python thread: what people write first."""
    import numpy as np
    from PIL import Image

    for _ in range(epochs):
        for start in range(0, len(paths), batch_size):
            chunk = range(start, min(start + batch_size, len(paths)))
            images = []
            for i in chunk:
                with Image.open(paths[i]) as im:
                    im = im.convert("L").resize((image_size, image_size), Image.Resampling.BILINEAR)
                    images.append(np.asarray(im, dtype="float32")[..., None] / 255.0)
            yield np.stack(images), np.asarray([labels[i] for i in chunk], dtype="int32")


def _fit_rate(make_input, n: int, epochs: int, image_size: int, classes: int) -> float:
    """Steady-state training images/s over epochs 2..epochs+1 of a fresh small_cnn."""
    import keras

    from training.model import build_model, compile_model

    keras.utils.set_random_seed(7)
    model = build_model("small_cnn", image_size, 1, classes)
    compile_model(model, 1e-3)
    times: list[float] = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            times.append(time.perf_counter() - self.started)

    x, fit_kwargs = make_input(epochs + 1)
    model.fit(x, epochs=epochs + 1, verbose=0, shuffle=False, callbacks=[EpochTimer()], **fit_kwargs)
    return n * epochs / sum(times[1:])


def run(
    per_class: int, epochs: int, image_size: int, batch_size: int, file_size: int
) -> list[tuple[str, float, float]]:
    """(loader name, input-only images/s, training images/s) for each loader."""
    import numpy as np
    import tensorflow as tf

    from core.preprocessing import PreprocessSpec
    from training.data import scan_folder
    from training.demo_data import write_demo_data
    from training.inputs import image_dataset

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "demo"
        write_demo_data(root, per_class=per_class, size=file_size)
        ds = scan_folder(root)
        index = {c: i for i, c in enumerate(ds.classes)}
        paths = [ds.path_of(i) for i in ds.items]
        labels = [index[i.label] for i in ds.items]
        n, classes = len(paths), len(ds.classes)
        spec = PreprocessSpec(image_size, 1)
        steps = -(-n // batch_size)
        x = np.stack([np.asarray(img) for img, _ in image_dataset(paths, labels, spec, n).unbatch()])
        y = np.asarray(labels, dtype="int32")

        loaders = {
            "naive Python loader (PIL per file)": lambda e: (
                _naive_batches(paths, labels, image_size, batch_size, e),
                {"steps_per_epoch": steps},
            ),
            "tf.data (parallel decode, cache, prefetch)": lambda e: (
                image_dataset(paths, labels, spec, batch_size, shuffle_seed=1),
                {},
            ),
            "in-memory tensors (upper bound)": lambda e: (
                tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size),
                {},
            ),
        }
        results = []
        for name, make_input in loaders.items():
            source, _ = make_input(epochs)
            started = time.perf_counter()
            if isinstance(source, tf.data.Dataset):
                for _ in range(epochs):
                    for _batch in source:
                        pass
            else:
                for _batch in source:
                    pass
            input_rate = n * epochs / (time.perf_counter() - started)
            fit_rate = _fit_rate(make_input, n, epochs, image_size, classes)
            print(f"  {name}: input {input_rate:.0f} images/s, training {fit_rate:.0f} images/s", flush=True)
            results.append((name, input_rate, fit_rate))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (fewer images, epochs)")
    args = parser.parse_args()
    per_class, epochs = (60, 2) if args.quick else (200, 4)
    image_size, batch_size, file_size = 64, 32, 256
    print(
        f"training throughput: small_cnn at {image_size}x{image_size}, {3 * per_class} PNGs "
        f"{file_size}x{file_size}, "
        f"batch {batch_size}, {epochs} timed epochs, {os.cpu_count()} CPUs"
    )
    results = run(per_class, epochs, image_size, batch_size, file_size)
    base_in, base_fit = results[0][1], results[0][2]
    print(f"\n{'loader':<44} {'input img/s':>12} {'vs naive':>9} {'train img/s':>12} {'vs naive':>9}")
    for name, input_rate, fit_rate in results:
        print(
            f"{name:<44} {input_rate:>12.0f} {input_rate / base_in:>8.2f}x "
            f"{fit_rate:>12.0f} {fit_rate / base_fit:>8.2f}x"
        )


if __name__ == "__main__":
    main()
