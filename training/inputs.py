"""The tf.data input pipeline: parallel read + shared preprocessing, cache, shuffle, batch, prefetch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import tensorflow as tf

from core.dicom import DICOM_SUFFIXES, as_encoded_image
from core.preprocessing import PreprocessSpec, preprocess_image

_DICOM_NAME = "(?i).*(" + "|".join(s.replace(".", "\\.") for s in DICOM_SUFFIXES) + ")"


def _dicom_as_png(path: bytes) -> bytes:
    return as_encoded_image(Path(path.decode()).read_bytes())


def read_encoded(path: tf.Tensor) -> tf.Tensor:
    """A file's bytes as preprocessing decodes them: DICOM rendered to PNG, exactly as the API does."""
    return tf.cond(
        tf.strings.regex_full_match(path, _DICOM_NAME),
        # Python only for DICOM files: PNG/JPEG reads stay in the graph, off the GIL.
        lambda: tf.numpy_function(_dicom_as_png, [path], tf.string, stateful=False),
        lambda: tf.io.read_file(path),
    )


def image_dataset(
    paths: Sequence[Path | str],
    labels: Sequence[int],
    spec: PreprocessSpec,
    batch_size: int,
    shuffle_seed: int | None = None,
    cache: bool = True,
) -> tf.data.Dataset:
    """(image, label) batches; images go through core.preprocessing exactly as the API does."""
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant([str(p) for p in paths], tf.string), tf.constant(list(labels), tf.int32))
    )

    def load(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = preprocess_image(read_encoded(path), spec)
        # decode_image has no static shape; the model needs one.
        return tf.ensure_shape(image, (spec.image_size, spec.image_size, spec.channels)), label

    # deterministic=True keeps file order, so evaluation rows line up with test_split.json.
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        ds = ds.cache()  # decode once; later epochs read decoded tensors from memory
    if shuffle_seed is not None:
        ds = ds.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
