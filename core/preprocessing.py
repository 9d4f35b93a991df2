"""The one preprocessing function shared by training, evaluation, the model tests and the API.

decode → channels → resize → dtype, in TensorFlow ops so it runs inside tf.data and inside the
serving graph alike. Both sides call `preprocess_image`; a test proves the tensors are identical.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from core.image_stats import HIST_BINS


@dataclass(frozen=True)
class PreprocessSpec:
    """What the model expects; stored in every manifest under "preprocessing"."""

    image_size: int = 64
    channels: int = 1

    def to_dict(self) -> dict[str, int]:
        return {"image_size": self.image_size, "channels": self.channels}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreprocessSpec:
        return cls(image_size=int(data["image_size"]), channels=int(data["channels"]))


def preprocess_image(encoded: tf.Tensor, spec: PreprocessSpec) -> tf.Tensor:
    """Encoded PNG/JPEG bytes (scalar string tensor) → float32 [size, size, channels] in [0, 1]."""
    # decode_image converts gray/RGB/RGBA to the requested channel count itself, so grayscale,
    # RGB and RGBA uploads of the same picture give the same tensor. (Its GIF and BMP decoders
    # refuse channels=1, which is why datasets and the API take PNG and JPEG only.)
    image = tf.io.decode_image(encoded, channels=spec.channels, expand_animations=False, dtype=tf.uint8)
    image = tf.image.resize(image, (spec.image_size, spec.image_size), method="bilinear", antialias=True)
    return tf.clip_by_value(image / 255.0, 0.0, 1.0)


def pixel_statistics(pixels: tf.Tensor) -> tf.Tensor:
    """Preprocessed images [N, H, W, C] in [0, 1] → [N, 2 + HIST_BINS]: intensity mean, standard
    deviation and histogram shares over [0, 1] in HIST_BINS equal bins (the last one closed).

    How every image is described (core.image_stats turns a row into the logged statistics): the API
    computes it inside its serving graph, training on the held-out split for the reference profile.
    """
    flat = tf.reshape(tf.cast(pixels, tf.float32), [tf.shape(pixels)[0], -1])
    size = tf.cast(tf.shape(flat)[1], tf.float32)
    index = tf.clip_by_value(tf.cast(flat * HIST_BINS, tf.int32), 0, HIST_BINS - 1)
    counts = tf.math.bincount(index, minlength=HIST_BINS, maxlength=HIST_BINS, dtype=tf.float32, axis=-1)
    mean = tf.reduce_mean(flat, axis=1, keepdims=True)
    std = tf.math.reduce_std(flat, axis=1, keepdims=True)
    return tf.concat([mean, std, counts / size], axis=1)
