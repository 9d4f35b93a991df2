"""The training input pipeline and the serving path give identical tensors for the same bytes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.preprocessing import PreprocessSpec, preprocess_image
from training.inputs import image_dataset


@pytest.mark.parametrize("spec", [PreprocessSpec(64, 1), PreprocessSpec(32, 3)])
def test_training_pipeline_equals_serving_path(tmp_path, png, spec):
    import tensorflow as tf

    files = [tmp_path / "gray.png", tmp_path / "rgb.png", tmp_path / "rgba.png", tmp_path / "photo.jpg"]
    png(files[0], seed=1, size=50)
    png(files[1], seed=2, size=80, mode="RGB")
    png(files[2], seed=3, size=40, mode="RGBA")
    Image.fromarray(np.random.default_rng(4).integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(files[3])

    ds = image_dataset(files, [0, 1, 2, 0], spec, batch_size=3, shuffle_seed=None)
    batched = np.concatenate([images.numpy() for images, _ in ds])
    for row, path in zip(batched, files, strict=True):
        # exactly what the API does with an upload: the raw bytes into the shared function
        served = preprocess_image(tf.constant(path.read_bytes()), spec).numpy()
        assert served.dtype == np.float32 and row.dtype == np.float32
        assert served.shape == (spec.image_size, spec.image_size, spec.channels)
        np.testing.assert_array_equal(row, served)


def test_cached_epochs_give_the_same_tensors(tmp_path, png):
    png(tmp_path / "a.png", seed=5, size=30)
    ds = image_dataset([tmp_path / "a.png"], [0], PreprocessSpec(16, 1), batch_size=1)
    first, second = (next(iter(ds))[0].numpy() for _ in range(2))
    np.testing.assert_array_equal(first, second)


def test_trained_model_scores_the_same_in_training_and_in_the_api(tmp_path, png):
    """End to end: a model fed by the training pipeline and the API's graph on raw bytes agree."""
    from model_api.bundle import load_bundle
    from training.model import build_model

    spec = PreprocessSpec(32, 1)
    files = [tmp_path / f"{i}.png" for i in range(4)]
    for i, path in enumerate(files):
        png(path, seed=10 + i, size=48, mode="L" if i % 2 else "RGB")
    model = build_model("small_cnn", 32, 1, 3)
    model.save(tmp_path / "model.keras")
    ds = image_dataset(files, [0] * 4, spec, batch_size=4)
    in_training = np.asarray(model(next(iter(ds))[0], training=False))
    manifest = {"classes": ["a", "b", "c"], "preprocessing": spec.to_dict()}
    bundle = load_bundle(tmp_path / "model.keras", manifest, warmup=False)
    served = bundle.predict_encoded([p.read_bytes() for p in files])
    np.testing.assert_allclose(served, in_training, rtol=1e-5, atol=1e-6)


def test_a_dicom_and_its_png_rendering_give_the_same_tensor(tmp_path):
    """DICOM in training (tf.data), in the API's path and as its PNG rendering: one tensor."""
    import tensorflow as tf
    from dicom_files import UNWINDOWED, WINDOWED, dicom_path, monochrome1_copy, png_of, reference_rendering

    from core.dicom import as_encoded_image

    spec = PreprocessSpec(64, 1)
    sources = [dicom_path(WINDOWED), dicom_path(UNWINDOWED), monochrome1_copy(WINDOWED, tmp_path / "m1.dcm")]
    files = []
    for i, source in enumerate(sources):
        dcm, png = tmp_path / f"{i}.DCM", tmp_path / f"{i}.png"  # the suffix matches in any case
        dcm.write_bytes(source.read_bytes())
        png.write_bytes(png_of(reference_rendering(source)))  # the standard's rendering, not ours
        files += [dcm, png]
    ds = image_dataset(files, [0] * len(files), spec, batch_size=len(files))
    rows = next(iter(ds))[0].numpy()
    for k in range(len(sources)):
        from_dicom, from_png = rows[2 * k], rows[2 * k + 1]
        np.testing.assert_array_equal(from_dicom, from_png)
        served = preprocess_image(tf.constant(as_encoded_image(files[2 * k].read_bytes())), spec).numpy()
        np.testing.assert_array_equal(served, from_png)
    assert not np.array_equal(rows[0], rows[4])  # MONOCHROME1 reached the tensor inverted
