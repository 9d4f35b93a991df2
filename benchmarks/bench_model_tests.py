"""Benchmark: how the model test suite evaluates a test split, against the naive baseline.

Baseline (measured in the same run): `model.predict` once per image, the way ad-hoc evaluation
scripts do it. Compared: the suite's serving path (shared preprocessing + one compiled call) per
image, and batched by 64 as `split_predictions` does. Prints a table of images/s and speedups.

    python benchmarks/bench_model_tests.py [--quick]
"""

from __future__ import annotations

import argparse
import io
import os
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _images(n: int, size: int) -> list[bytes]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8), mode="L").save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out


def _model(size: int):
    """A small CNN of the size the demo trains (random weights: speed does not depend on them)."""
    import keras

    inputs = keras.Input((size, size, 1))
    x = inputs
    for filters in (16, 32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


def _time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm up: tracing and first-call allocation are not what we measure
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and repeats")
    args = parser.parse_args()
    n, repeats, size = (64, 2, 64) if args.quick else (256, 3, 64)
    n_base = 16 if args.quick else 48  # the baseline is ~100x slower: fewer images, same rate

    import keras
    import numpy as np
    import tensorflow as tf

    from core.preprocessing import PreprocessSpec, preprocess_image
    from unit_testing.serving import load_served_model

    tmp = os.path.join(os.environ.get("TMPDIR", "/tmp"), "bench_model_tests.keras")
    _model(size).save(tmp)
    manifest = {"classes": ["a", "b", "c"], "preprocessing": {"image_size": size, "channels": 1}}
    images = _images(n, size)
    served = load_served_model(tmp, manifest)
    model = keras.saving.load_model(tmp, compile=False)
    spec = PreprocessSpec(size, 1)

    def baseline() -> None:
        for data in images[:n_base]:
            model.predict(preprocess_image(tf.constant(data), spec)[None], verbose=0)

    def per_image() -> None:
        for data in images:
            served.predict_encoded([data])

    def batched() -> None:
        np.concatenate([served.predict_encoded(images[i : i + 64]) for i in range(0, n, 64)])

    rows = [("model.predict per image (baseline)", n_base, _time(baseline, 1))]
    rows.append(("serving path, per image", n, _time(per_image, repeats)))
    rows.append(("serving path, batches of 64 (suite)", n, _time(batched, repeats)))
    base_rate = rows[0][1] / rows[0][2]
    print(f"PNG images {size}x{size}, best of {repeats} (baseline: 1 run), {os.cpu_count()} CPUs")
    print(f"{'method':<38}{'images':>8}{'seconds':>10}{'images/s':>12}{'speedup':>10}")
    for name, count, seconds in rows:
        rate = count / seconds
        print(f"{name:<38}{count:>8}{seconds:>10.3f}{rate:>12.0f}{rate / base_rate:>9.1f}x")
    os.remove(tmp)


if __name__ == "__main__":
    main()
