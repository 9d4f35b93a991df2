"""Load a registry version the way the API serves it, and predict on encoded images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlops.preprocessing import PreprocessSpec


class ServedModel:
    """A Keras model behind the serving predict path: shared preprocessing + one compiled call.

    Same interface as model_api's ModelBundle (predict_encoded, predict_pixels, input_shape).
    """

    def __init__(self, model_path: Path, manifest: dict[str, Any]) -> None:
        import keras
        import tensorflow as tf

        self.manifest = manifest
        self.classes: list[str] = list(manifest["classes"])
        self.spec = PreprocessSpec.from_dict(manifest["preprocessing"])
        model = keras.saving.load_model(model_path, compile=False)
        # A compiled call, never model.predict per request (DESIGN.md: Model API).
        self._forward = tf.function(lambda batch: model(batch, training=False), reduce_retracing=True)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.spec.image_size, self.spec.image_size, self.spec.channels)

    def predict_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Preprocessed float32 pixels [N, H, W, C] → probabilities [N, classes]."""
        import tensorflow as tf

        return np.asarray(self._forward(tf.constant(pixels, dtype=tf.float32)))

    def predict_encoded(self, images: Sequence[bytes]) -> np.ndarray:
        """Encoded images → class probabilities, one row per image."""
        import tensorflow as tf

        from mlops.preprocessing import preprocess_image

        return self.predict_pixels(
            tf.stack([preprocess_image(tf.constant(data), self.spec) for data in images])
        )


def load_served_model(model_path: Path, manifest: dict[str, Any]) -> ServedModel:
    """The model as the API loads it."""
    # TODO(model_api): switch to model_api.bundle.load_bundle once it lands on main, so this suite
    # exercises the exact serving code instead of this equivalent path.
    return ServedModel(model_path, manifest)
