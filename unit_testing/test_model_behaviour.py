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


def _variants(data: bytes) -> dict[str, bytes]:
    original = Image.open(io.BytesIO(data))
    gray = original.convert("L")
    w, h = gray.size
    return {
        "grayscale": _encode(gray),
        "rgb": _encode(gray.convert("RGB")),
        "rgba": _encode(gray.convert("RGBA")),
        "half-size": _encode(gray.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.BILINEAR)),
        "double-size": _encode(gray.resize((w * 2, h * 2), Image.Resampling.BILINEAR)),
    }


def test_label_survives_channel_and_size_changes(served, sample, settings):
    base = served.predict_encoded([img.data for img in sample]).argmax(axis=1)
    kept, total, flips = 0, 0, []
    for img, label in zip(sample, base, strict=True):
        variants = _variants(img.data)
        labels = served.predict_encoded(list(variants.values())).argmax(axis=1)
        for name, got in zip(variants, labels, strict=True):
            total += 1
            if got == label:
                kept += 1
            else:
                flips.append(f"{img.path} [{name}]")
    agreement = kept / total
    minimum = settings.model_tests.robustness_min_agreement
    assert agreement >= minimum, (
        f"label kept in {agreement:.1%} < {minimum:.0%} of variants; flips: {flips[:5]}"
    )
