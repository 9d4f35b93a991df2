"""Determinism and robustness: same input, same answer; channels and size do not change the label."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def _encode(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_predictions_are_deterministic(served, sample):
    batch = [img.data for img in sample]
    first, second = served.predict_encoded(batch), served.predict_encoded(batch)
    np.testing.assert_array_equal(first, second)


def test_single_and_batch_predictions_agree(served, sample):
    batch = served.predict_encoded([img.data for img in sample])
    singles = np.concatenate([served.predict_encoded([img.data]) for img in sample])
    np.testing.assert_allclose(batch, singles, atol=1e-4)
    assert (batch.argmax(axis=1) == singles.argmax(axis=1)).all()


def _channel_variants(data: bytes) -> dict[str, bytes]:
    gray = Image.open(io.BytesIO(data)).convert("L")
    return {mode: _encode(gray.convert(mode)) for mode in ("L", "RGB", "RGBA")}


def _resolution_variants(data: bytes) -> dict[str, bytes]:
    # The same picture at a higher resolution. Nearest-neighbour adds no detail of its own, so
    # only the serving resize path differs. Smaller versions are not tested: they lose detail
    # below the model's input size, which is a different picture, not a different upload.
    gray = Image.open(io.BytesIO(data)).convert("L")
    w, h = gray.size
    return {f"{k}x": _encode(gray.resize((w * k, h * k), Image.Resampling.NEAREST)) for k in (2, 3)}


def _agreement(served, sample, make_variants) -> tuple[float, list[str]]:
    base = served.predict_encoded([img.data for img in sample]).argmax(axis=1)
    kept, total, flips = 0, 0, []
    for img, label in zip(sample, base, strict=True):
        variants = make_variants(img.data)
        labels = served.predict_encoded(list(variants.values())).argmax(axis=1)
        for name, got in zip(variants, labels, strict=True):
            total += 1
            kept += int(got == label)
            if got != label:
                flips.append(f"{img.path} [{name}]")
    return kept / total, flips


def test_label_survives_grayscale_rgb_rgba(served, sample, settings, record_property):
    agreement, flips = _agreement(served, sample, _channel_variants)
    minimum = settings.model_tests.robustness_min_agreement
    record_property("channel_agreement", round(agreement, 4))
    assert agreement >= minimum, f"label kept in {agreement:.1%} < {minimum:.0%}; flips: {flips[:5]}"


def test_label_survives_larger_uploads(served, sample, settings, record_property):
    agreement, flips = _agreement(served, sample, _resolution_variants)
    minimum = settings.model_tests.robustness_min_agreement
    record_property("resolution_agreement", round(agreement, 4))
    assert agreement >= minimum, f"label kept in {agreement:.1%} < {minimum:.0%}; flips: {flips[:5]}"
