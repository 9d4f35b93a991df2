"""The one preprocessing function shared by training, evaluation, the model tests and the API.

decode → channels → resize → dtype, in TensorFlow ops so it runs inside tf.data and inside the
serving graph alike. Both sides call `preprocess_image`; a test proves the tensors are identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf


@dataclass(frozen=True)
class PreprocessSpec:
    """What the model expects; stored in every manifest under "preprocessing"."""

    image_size: int = 64
    channels: int = 1

    def to_dict(self) -> dict[str, int]:
        return {"image_size": self.image_size, "channels": self.channels}

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessSpec:
        return cls(image_size=int(data["image_size"]), channels=int(data["channels"]))


def preprocess_image(encoded: tf.Tensor, spec: PreprocessSpec) -> tf.Tensor:
    """Encoded PNG/JPEG bytes (scalar string tensor) → float32 [size, size, channels] in [0, 1]."""
    # decode_image converts gray/RGB/RGBA to the requested channel count itself, so grayscale,
    # RGB and RGBA uploads of the same picture give the same tensor. (Its GIF and BMP decoders
    # refuse channels=1, which is why datasets and the API take PNG and JPEG only.)
    image = tf.io.decode_image(encoded, channels=spec.channels, expand_animations=False, dtype=tf.uint8)
    image = tf.image.resize(image, (spec.image_size, spec.image_size), method="bilinear", antialias=True)
    return tf.clip_by_value(image / 255.0, 0.0, 1.0)
