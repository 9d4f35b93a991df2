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


def _agreement(served, sample, make_variants) -> tuple[int, int, list[str]]:
    """(images whose label every variant kept, images, flips): one image is one trial, since the
    variants of one picture are not independent of each other."""
    base = served.predict_encoded([img.data for img in sample]).argmax(axis=1)
    kept, flips = 0, []
    for img, label in zip(sample, base, strict=True):
        variants = make_variants(img.data)
        labels = served.predict_encoded(list(variants.values())).argmax(axis=1)
        flipped = [name for name, got in zip(variants, labels, strict=True) if got != label]
        kept += int(not flipped)
        flips += [f"{img.path} [{name}]" for name in flipped]
    return kept, len(sample), flips


def _check(kind: str, kept: int, n: int, flips: list[str], settings, record_property) -> None:
    """Fail only on evidence: the Wilson upper bound (95 %) of the share of images whose label
    survives lies below the minimum. The raw share failed healthy demo retrains (issue 24): on 64
    images a model that keeps exactly the minimum shows less than it about half the time by chance."""
    from training.paired import wilson_interval

    minimum = settings.model_tests.robustness_min_agreement
    high = wilson_interval(kept, n)[1]
    record_property(f"{kind}_agreement", round(kept / n, 4) if n else None)
    record_property(f"{kind}_agreement_upper", round(high, 4))
    assert high >= minimum, (
        f"label kept on {kept} of {n} images ({kept / n:.1%}; 95% upper bound {high:.1%} < {minimum:.0%}); "
        f"flips: {flips[:5]}"
    )


def test_label_survives_grayscale_rgb_rgba(served, sample, settings, record_property):
    _check("channel", *_agreement(served, sample, _channel_variants), settings, record_property)


def test_label_survives_larger_uploads(served, sample, settings, record_property):
    _check("resolution", *_agreement(served, sample, _resolution_variants), settings, record_property)
