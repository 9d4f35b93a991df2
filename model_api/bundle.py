"""A loaded model ready to serve: compiled, warmed graphs plus what the manifest says about it.

Never `model.predict` per request: it rebuilds a data pipeline on every call. Instead one
`tf.function` per input kind, with a fixed signature, is traced once at load (its concrete
function is what is called) and warmed up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import MlopsError
from core.preprocessing import PreprocessSpec, pixel_statistics, preprocess_image
from model_api.explain import ExplainUnavailable, build_explainer
from registry.manifest import Manifest


class BadImageError(ValueError):
    """An encoded image the graph could not decode."""


@dataclass
class ModelBundle:
    """A Keras model with its class names, preprocessing spec and compiled predict functions."""

    name: str
    version: int | str
    classes: list[str]
    spec: PreprocessSpec
    manifest: Manifest
    model_path: Path
    _from_encoded: Any = field(repr=False, default=None)
    _from_pixels: Any = field(repr=False, default=None)
    _model: Any = field(repr=False, default=None)  # owns the variables the graphs capture
    # Grad-CAM (model_api/explain.py), its own graph so plain predictions never run it.
    explainer: Any = field(repr=False, default=None)
    explain_unavailable: str = ""
    digest: str = ""  # the registry version's signed digest (registry.chain.manifest_digest); "" for a file

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The model's input shape without the batch axis: (H, W, C)."""
        return (self.spec.image_size, self.spec.image_size, self.spec.channels)

    def predict_encoded(self, images: list[bytes]) -> np.ndarray:
        """Encoded PNG/JPEG images → float32 probabilities [N, classes]."""
        return self.predict_encoded_with_stats(images)[0]

    def predict_encoded_with_stats(self, images: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """Like predict_encoded, plus each input's pixel statistics [N, 2 + bins] (for the log)."""
        import tensorflow as tf

        try:
            probabilities, stats = self._from_encoded(tf.constant(images, dtype=tf.string))
        except tf.errors.InvalidArgumentError as exc:
            raise BadImageError(_tf_reason(exc.message)) from None
        return probabilities.numpy(), stats.numpy()

    def predict_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Preprocessed float32 pixels [N, H, W, C] in [0, 1] → float32 probabilities [N, classes]."""
        return self.predict_pixels_with_stats(pixels)[0]

    def predict_pixels_with_stats(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Like predict_pixels, plus each input's pixel statistics [N, 2 + bins]."""
        import tensorflow as tf

        if pixels.ndim != 4 or tuple(pixels.shape[1:]) != self.input_shape:
            # The flat call (flat_call) does not check the signature's shape: this does.
            raise ValueError(f"pixels of shape {pixels.shape} do not match [N, {self.input_shape}]")
        probabilities, stats = self._from_pixels(tf.constant(pixels, dtype=tf.float32))
        return probabilities.numpy(), stats.numpy()

    def explain_encoded(self, images: list[bytes]) -> tuple[np.ndarray, list[bytes], list[bytes]]:
        """Encoded images → probabilities, Grad-CAM heatmap PNGs and the model-input PNGs."""
        import tensorflow as tf

        if self.explainer is None:
            raise MlopsError(self.explain_unavailable or "this model has no explanation function")
        try:
            return self.explainer(images)
        except tf.errors.InvalidArgumentError as exc:
            raise BadImageError(_tf_reason(exc.message)) from None

    def summary(self) -> dict[str, Any]:
        """What /model shows: identity, classes, input, and the manifest's key lineage."""
        keep = ("created_at", "area", "metrics", "gate", "code", "dataset", "parent", "frameworks")
        stored = self.manifest.to_dict(annotations=False)  # /model shows the manifest's JSON form
        lineage = {key: stored[key] for key in keep if key in stored}
        if isinstance(lineage.get("dataset"), dict):
            lineage["dataset"] = {
                k: v for k, v in lineage["dataset"].items() if k in ("uri", "fingerprint", "class_counts")
            }
        if isinstance(lineage.get("metrics"), dict):
            lineage["metrics"] = {
                k: v for k, v in lineage["metrics"].items() if k in ("accuracy", "per_class")
            }
        return {
            "name": self.name,
            "version": self.version,
            "classes": self.classes,
            "preprocessing": self.spec.to_dict(),
            "model_file": self.model_path.name,
            **lineage,
        }


def _tf_reason(message: str) -> str:
    """The human part of a TensorFlow op error, without node names and the Python call stack."""
    reasons = []
    for line in (message or "").splitlines():
        text = re.sub(r"\{\{[^}]*\}\}|\[\[.*?\]\]|\[Op:[^\]]*\]", "", line).strip()
        if not text or line.startswith("  ") or text.startswith(("Graph execution error", "Detected at")):
            continue
        reasons.append(text)
    return reasons[-1][:300] if reasons else "the image could not be decoded"


def _first_line(message: str) -> str:
    return (message or "could not decode the image").strip().splitlines()[0][:300]


def configure_threads(threads: int) -> None:
    """Limit TensorFlow's intra-op threads (0: leave TensorFlow's default); only before first use."""
    import tensorflow as tf

    if threads <= 0:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
    except RuntimeError:
        pass  # the runtime is already initialised (a second app in one process): keep its setting


def _manifest_spec(manifest: Manifest) -> tuple[list[str], PreprocessSpec]:
    classes = list(manifest.classes)
    if manifest.preprocessing is None:
        raise MlopsError(
            "model manifest lacks a valid 'preprocessing' entry; it needs 'classes' and "
            "'preprocessing' {image_size, channels} (docs/manifest.md)"
        )
    spec = PreprocessSpec(manifest.preprocessing.image_size, manifest.preprocessing.channels)
    if not classes:
        raise MlopsError("model manifest lists no classes (docs/manifest.md: 'classes')")
    return classes, spec


def load_bundle(
    model_path: str | Path, manifest: Manifest | dict[str, Any], *, warmup: bool = True
) -> ModelBundle:
    """Load a Keras model file and compile + warm its serving graphs (a dict manifest is parsed first)."""
    import keras
    import tensorflow as tf

    model_path = Path(model_path)
    if not isinstance(manifest, Manifest):
        manifest = Manifest.from_dict(manifest)  # ManifestError names a field of the wrong type
    classes, spec = _manifest_spec(manifest)
    if not model_path.is_file():
        raise MlopsError(f"model file {model_path} does not exist")
    try:
        model = keras.saving.load_model(model_path, compile=False)
    except (OSError, ValueError) as exc:
        raise MlopsError(f"cannot load model {model_path}: {_first_line(str(exc))}") from None
    outputs = int(model.outputs[0].shape[-1])
    if outputs != len(classes):
        raise MlopsError(
            f"model {model_path.name} has {outputs} outputs but the manifest lists {len(classes)} classes"
        )

    temperature = calibration_temperature(manifest)

    # Each graph also describes its inputs (core.preprocessing.pixel_statistics): the prediction
    # log gets the statistics of exactly what the model saw, for a few microseconds of C++.
    @tf.function(input_signature=[tf.TensorSpec([None, *_shape(spec)], tf.float32)])
    def from_pixels(pixels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return calibrated(model(pixels, training=False), temperature), pixel_statistics(pixels)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def from_encoded(encoded: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        # Preprocessing runs inside the graph: one call, no Python per pixel.
        pixels = tf.map_fn(
            lambda one: preprocess_image(one, spec),
            encoded,
            fn_output_signature=tf.TensorSpec(_shape(spec), tf.float32),
        )
        return calibrated(model(pixels, training=False), temperature), pixel_statistics(pixels)

    bundle = ModelBundle(
        name=manifest.name or model_path.stem,
        version=manifest.version or 0,
        classes=classes,
        spec=spec,
        manifest=manifest,
        model_path=model_path,
        # The concrete functions, not the tf.functions: with one fixed signature each there is
        # nothing to dispatch on, and skipping the dispatch saves ~0.3 ms a call (~15%). flat_call
        # skips binding the call's arguments to that signature too.
        _from_encoded=flat_call(from_encoded.get_concrete_function()),
        _from_pixels=flat_call(from_pixels.get_concrete_function()),
        _model=model,
    )
    try:
        bundle.explainer = build_explainer(model, spec)
    except ExplainUnavailable as exc:
        bundle.explain_unavailable = str(exc)  # plain predictions still serve; ?explain=1 says why not
    if warmup:
        warm_up(bundle)
    return bundle


def flat_call(concrete: Any) -> Any:
    """Call CONCRETE with one tensor, without binding it to the structured signature each time.

    The signature is fixed and the argument already a tensor of its dtype, so binding it (inspect's
    Signature.bind, nest flattening, TensorSpec casts) was pure overhead: 14 % of a gunicorn worker's
    time holding the GIL under load (py-spy --gil). `_call_flat` with the captured inputs taken once
    is what ConcreteFunction.__call__ ends up calling; TensorFlow is pinned, and the bundle tests
    exercise this path, so an upgrade that moves it fails loudly there, not in production.
    """
    call_flat = getattr(concrete, "_call_flat", None)
    if call_flat is None:
        return concrete
    captured = list(concrete.captured_inputs)

    def call(tensor: Any) -> Any:
        return call_flat([tensor], captured)

    return call


# -- calibration: the manifest's temperature (training/calibration.py), applied inside the graphs ----

CALIBRATION_EPS = 1e-12  # the same log(0) guard as training.calibration.EPS


def calibration_temperature(manifest: Manifest) -> float | None:
    """The version's fitted temperature, None when it records none (served as the model outputs)."""
    part = manifest.calibration
    if part is None:
        return None
    if not part.temperature > 0:
        raise MlopsError(f"manifest.calibration.temperature must be > 0, got {part.temperature!r}")
    return float(part.temperature)


def calibrated(probabilities: Any, temperature: float | None) -> Any:
    """softmax(log p / T) in the graph; the model's own probabilities when T is None."""
    import tensorflow as tf

    if temperature is None:
        return probabilities
    logits = tf.math.log(tf.clip_by_value(probabilities, CALIBRATION_EPS, 1.0)) / temperature
    return tf.nn.softmax(logits, axis=-1)


def _shape(spec: PreprocessSpec) -> tuple[int, int, int]:
    return (spec.image_size, spec.image_size, spec.channels)


def warm_up(bundle: ModelBundle) -> None:
    """Trace and run every graph once, at batch 1 and 2, so the first request pays nothing."""
    import tensorflow as tf

    gray = np.linspace(0, 255, 32 * 32, dtype=np.uint8).reshape(32, 32, 1)
    png = tf.io.encode_png(tf.constant(gray)).numpy()
    for batch in (1, 2):
        bundle.predict_encoded([png] * batch)
        bundle.predict_pixels(np.zeros((batch, *bundle.input_shape), np.float32))
        if bundle.explainer is not None:
            bundle.explain_encoded([png] * batch)
