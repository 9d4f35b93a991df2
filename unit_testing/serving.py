"""Load a registry version the way the API serves it, and predict on encoded images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlops.preprocessing import PreprocessSpec


class ServedModel:
    """A Keras model behind the serving predict path: shared preprocessing + one compiled call."""

    def __init__(self, model_path: Path, manifest: dict[str, Any]) -> None:
        import keras
        import tensorflow as tf

        from mlops.preprocessing import preprocess_image

        self.manifest = manifest
        self.classes: list[str] = list(manifest["classes"])
        self.spec = PreprocessSpec.from_dict(manifest["preprocessing"])
        self.model = keras.saving.load_model(model_path, compile=False)
        spec = self.spec
        # A compiled call, never model.predict per request (DESIGN.md: Model API).
        self._forward = tf.function(lambda batch: self.model(batch, training=False), reduce_retracing=True)
        self._preprocess = lambda data: preprocess_image(tf.constant(data), spec)
        self._tf = tf

    def preprocess(self, images: Sequence[bytes]) -> np.ndarray:
        """Encoded images → the float32 batch the model sees."""
        return self._tf.stack([self._preprocess(data) for data in images]).numpy()

    def predict(self, images: Sequence[bytes]) -> np.ndarray:
        """Encoded images → class probabilities, one row per image."""
        return np.asarray(self._forward(self._tf.constant(self.preprocess(images))))


def load_served_model(model_path: Path, manifest: dict[str, Any]) -> ServedModel:
    """The model as the API loads it."""
    # TODO(model_api): switch to model_api's loader once it lands on main, so this suite
    # exercises the exact serving code instead of this equivalent path.
    return ServedModel(model_path, manifest)
