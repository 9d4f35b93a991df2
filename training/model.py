"""The Keras model: a small CNN by default, or a keras.applications backbone."""

from __future__ import annotations

import keras

from core.errors import UsageError

ARCHITECTURES = ("small_cnn", "mobilenet_v3_small", "efficientnet_b0")


def _small_cnn(inputs: keras.KerasTensor) -> keras.KerasTensor:
    x = inputs
    for filters in (16, 32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)  # fast, stable convergence on few images
        x = keras.layers.Activation("relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    return keras.layers.GlobalAveragePooling2D()(x)


def _backbone(architecture: str, inputs: keras.KerasTensor, weights: str) -> keras.KerasTensor:
    shape = tuple(inputs.shape[1:])
    # Inputs are in [0, 1] (core.preprocessing); each backbone expects its own scale.
    if architecture == "mobilenet_v3_small":
        x = keras.layers.Rescaling(2.0, offset=-1.0)(inputs)  # [-1, 1] without built-in preprocessing
        base = keras.applications.MobileNetV3Small(
            input_shape=shape, include_top=False, weights=None, include_preprocessing=False, pooling="avg"
        )
    else:
        x = keras.layers.Rescaling(255.0)(inputs)  # EfficientNet normalises [0, 255] itself
        base = keras.applications.EfficientNetB0(
            input_shape=shape, include_top=False, weights=None, pooling="avg"
        )
    if weights:
        base.load_weights(weights)  # a local file: nothing is downloaded at train time
    return base(x)


def build_model(
    architecture: str, image_size: int, channels: int, num_classes: int, weights: str = ""
) -> keras.Model:
    """An uncompiled classifier: [size, size, channels] floats in [0, 1] → softmax probabilities."""
    if architecture not in ARCHITECTURES:
        raise UsageError(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    if weights and architecture == "small_cnn":
        raise UsageError("weights apply to keras.applications backbones only, not small_cnn")
    inputs = keras.Input((image_size, image_size, channels), name="image")
    x = _small_cnn(inputs) if architecture == "small_cnn" else _backbone(architecture, inputs, weights)
    x = keras.layers.Dropout(0.2)(x)
    # float32 output even under mixed_float16: a float16 softmax loses the small probabilities.
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=architecture)


def compile_model(model: keras.Model, learning_rate: float) -> None:
    """Adam + sparse categorical cross-entropy, accuracy tracked."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
