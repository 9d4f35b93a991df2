"""Grad-CAM saliency on the model's last convolutional block, as one compiled TensorFlow function.

Selvaraju et al. (2017): the gradient of the top class's score with respect to the last 4-D
feature map, averaged over space, weighs that map's channels; ReLU keeps what speaks *for* the
class. The score is the pre-softmax logit where the model ends in a softmax Dense layer (the
probability saturates near 1 and its gradient vanishes). The function is separate from the plain
predict graphs, so serving without `?explain=1` runs exactly what it ran before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import MlopsError
from core.preprocessing import PreprocessSpec, preprocess_image

METHOD = "grad-cam"


class ExplainUnavailable(MlopsError):
    """The model's shape is not one Grad-CAM can be computed on here."""


@dataclass(frozen=True)
class Explainer:
    """A compiled Grad-CAM function and the layer it looks at."""

    layer: str
    fn: Any  # concrete function: [N] encoded images → (probabilities, heatmap PNGs, input PNGs)

    def __call__(self, images: list[bytes]) -> tuple[np.ndarray, list[bytes], list[bytes]]:
        """Encoded images → probabilities [N, classes], heatmap PNGs and model-input PNGs."""
        import tensorflow as tf

        probabilities, heatmaps, inputs = self.fn(tf.constant(images, dtype=tf.string))
        return probabilities.numpy(), list(heatmaps.numpy()), list(inputs.numpy())


def _is_input(layer: Any) -> bool:
    import keras

    return isinstance(layer, keras.layers.InputLayer)


def _rank4(layer: Any) -> bool:
    try:
        return len(layer.output.shape) == 4
    except (AttributeError, ValueError):  # a layer never called in this graph has no output
        return False


def find_target(model: Any) -> tuple[Any, Any]:
    """(nested model or None, layer): the last layer with a 4-D output, looking inside backbones."""
    import keras

    found: tuple[Any, Any] | None = None
    for layer in model.layers:
        if _is_input(layer):
            continue
        if isinstance(layer, keras.Model):
            inner = [sub for sub in layer.layers if not _is_input(sub) and _rank4(sub)]
            if inner:
                found = (layer, inner[-1])
        elif _rank4(layer):
            found = (None, layer)
    if found is None:
        raise ExplainUnavailable(f"model {model.name!r} has no convolutional (4-D) layer to explain")
    return found


def _chain(model: Any) -> tuple[Any, str]:
    """A forward pass (pixels → features, scores, probabilities) over the model's top-level layers."""
    import keras
    import tensorflow as tf

    container, target = find_target(model)
    layers = [layer for layer in model.layers if not _is_input(layer)]
    final = layers[-1]
    logits_head = isinstance(final, keras.layers.Dense) and final.activation is keras.activations.softmax
    inner = None
    if container is not None:
        inner = keras.Model(container.inputs, [target.output, container.output])

    def forward(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        features = None
        for layer in layers:
            if layer is container:
                assert inner is not None  # made above whenever there is a container
                features, x = inner(x, training=False)
            elif layer is final and logits_head:
                scores = tf.matmul(x, final.kernel) + (final.bias if final.use_bias else 0.0)
                return features, scores, tf.nn.softmax(scores, axis=-1)
            else:
                x = layer(x, training=False)
                if layer is target:
                    features = x
        return features, x, x

    name = f"{container.name}/{target.name}" if container is not None else target.name
    return forward, name


def build_explainer(model: Any, spec: PreprocessSpec) -> Explainer:
    """Compile the Grad-CAM function for a loaded Keras model; ExplainUnavailable if it cannot."""
    import tensorflow as tf

    forward, layer_name = _chain(model)
    shape = (spec.image_size, spec.image_size, spec.channels)
    # The chain replays the top-level layers one after another; a model with branches at the top
    # level would compute something else, so check it reproduces the model before trusting it.
    probe = tf.random.stateless_uniform((2, *shape), seed=(1, 2))
    try:
        _, _, replayed = forward(probe)
    except (ValueError, TypeError):
        # A merge layer (Add, Multiply: EfficientNet's squeeze-excite) fed one tensor by the replay.
        replayed = None
    if replayed is None or not np.allclose(
        replayed.numpy(), np.asarray(model(probe, training=False)), atol=1e-5
    ):
        raise ExplainUnavailable(
            f"model {model.name!r} is not a chain of layers at its top level; Grad-CAM is not available"
        )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def explain(encoded: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        pixel_spec = tf.TensorSpec(shape, tf.float32)
        pixels = tf.map_fn(lambda one: preprocess_image(one, spec), encoded, fn_output_signature=pixel_spec)
        with tf.GradientTape() as tape:
            features, scores, probabilities = forward(pixels)
            top = tf.argmax(probabilities, axis=-1)
            chosen = tf.gather(scores, top, batch_dims=1)  # each image's own top class
        # Images in a batch are independent (inference mode), so one gradient serves them all.
        grads = tape.gradient(chosen, features)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1, keepdims=True))
        cam = tf.math.divide_no_nan(cam, tf.reduce_max(cam, axis=(1, 2, 3), keepdims=True))
        cam = tf.image.resize(cam, shape[:2], method="bilinear")
        heat = tf.cast(tf.round(tf.clip_by_value(cam, 0.0, 1.0) * 255.0), tf.uint8)
        seen = tf.cast(tf.round(pixels * 255.0), tf.uint8)
        png = tf.TensorSpec([], tf.string)
        return (
            probabilities,
            tf.map_fn(tf.io.encode_png, heat, fn_output_signature=png),
            tf.map_fn(tf.io.encode_png, seen, fn_output_signature=png),
        )

    return Explainer(layer_name, explain.get_concrete_function())
