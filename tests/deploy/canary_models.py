"""A real Keras model whose class follows image brightness, and images of every brightness.

The canary tests and benchmark need a model that predicts every class with varied confidence (a
random tiny network mostly says one class, hiding a collapse), so its weights are set by hand:
mean intensity m in [0, 1] gives logits (4 - 12 m, 0, 12 m - 8): covid below a third, pneumonia
above two thirds, normal between.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

CLASSES = ["covid", "normal", "pneumonia"]


def save_brightness_model(folder: Path, inverted: bool = False) -> dict:
    """Write model.keras into FOLDER; the manifest to register it with.

    inverted: the same network with the classes swapped (dark says pneumonia): a model an attacker
    would put in place of the real one, telling its answers apart from the real one's."""
    import keras
    import numpy as np

    model = keras.Sequential(
        [
            keras.Input((64, 64, 1)),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    weights, bias = [-12.0, 0.0, 12.0], [4.0, 0.0, -8.0]
    if inverted:
        weights, bias = weights[::-1], bias[::-1]
    model.layers[-1].set_weights([np.array([weights], "float32"), np.array(bias, "float32")])
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    return {
        "model_file": "model.keras",
        "classes": CLASSES,
        "preprocessing": {"image_size": 64, "channels": 1},
        "gate": {"passed": True},
    }


def brightness_images(count: int = 24, seed: int = 7) -> list[bytes]:
    """PNG images from dark to bright (with noise), so every class is predicted."""
    from PIL import Image

    rng = random.Random(seed)
    images = []
    for i in range(count):
        level = int(255 * (i + 0.5) / count)
        image = Image.new("L", (64, 64), level)
        image.putdata([max(0, min(255, level + rng.randint(-30, 30))) for _ in range(64 * 64)])
        out = io.BytesIO()
        image.save(out, format="PNG")
        images.append(out.getvalue())
    return images
