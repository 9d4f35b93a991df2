"""core.image_stats: one description of an image and of a set of them, and PSI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.image_stats import (
    HIST_BINS,
    build_profile,
    describe_image,
    describe_pixels,
    profile_from_json,
    profile_to_json,
    psi,
    psi_categories,
    shares,
)


def stats_of(pixels: np.ndarray) -> dict:
    """describe_pixels of one image's row of the graph's pixel_statistics."""
    from core.preprocessing import pixel_statistics

    return describe_pixels(pixel_statistics(pixels[None].astype(np.float32)).numpy()[0])


def test_a_flat_gray_image_has_its_value_as_mean_no_spread_and_one_histogram_bin():
    stats = stats_of(np.full((64, 64, 1), 0.55))
    assert stats["mean"] == pytest.approx(0.55)
    assert stats["std"] == 0.0
    assert stats["hist"] == [0, 0, 0, 0, 1.0, 0, 0, 0]  # 0.55 lies in [4/8, 5/8)


def test_half_black_half_white_fills_the_end_bins_and_has_spread_one_half():
    pixels = np.zeros((10, 10, 1))
    pixels[:5] = 1.0  # 1.0 belongs to the last bin, not a ninth one
    stats = stats_of(pixels)
    assert stats["mean"] == pytest.approx(0.5)
    assert stats["std"] == pytest.approx(0.5)
    assert stats["hist"] == [0.5, 0, 0, 0, 0, 0, 0, 0.5]
    assert len(stats["hist"]) == HIST_BINS


def test_statistics_of_a_batch_are_per_image_and_match_numpy():
    from core.preprocessing import pixel_statistics

    rng = np.random.default_rng(0)
    batch = rng.random((3, 32, 24, 3)).astype(np.float32)
    rows = pixel_statistics(batch).numpy()
    assert rows.shape == (3, 2 + HIST_BINS)
    for image, row in zip(batch, rows, strict=True):
        np.testing.assert_allclose(row[:2], [image.mean(), image.std()], rtol=1e-5)
        counts, _ = np.histogram(image, bins=HIST_BINS, range=(0, 1))
        np.testing.assert_allclose(row[2:], counts / image.size, atol=1e-7)


def test_describe_image_keeps_the_header_and_is_json():
    stats = describe_image(np.zeros(2 + HIST_BINS), fmt="JPEG", width=300, height=200)
    assert (stats["format"], stats["width"], stats["height"]) == ("JPEG", 300, 200)
    assert json.loads(json.dumps(stats)) == stats


def test_psi_is_near_zero_for_one_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    ref = rng.normal(0.45, 0.05, 2000)
    assert psi(ref, rng.normal(0.45, 0.05, 2000)) < 0.05
    assert psi(ref, rng.normal(0.60, 0.05, 2000)) > 1.0


def test_psi_bins_few_distinct_values_by_value_and_counts_unseen_ones():
    """Image sizes: every reference image 64 wide; live at 128 is all in the 'other' bin."""
    ref = np.full(500, 64.0)
    assert psi(ref, np.full(300, 64.0)) == pytest.approx(0.0)
    assert psi(ref, np.full(300, 128.0)) > 5
    assert psi(ref, np.concatenate([np.full(297, 64.0), np.full(3, 128.0)])) < 0.1


def test_psi_ignores_missing_values_and_says_nan_when_nothing_is_left():
    assert psi(np.array([1.0, 2.0, np.nan]), np.array([1.0, 2.0])) == pytest.approx(0.0)
    assert np.isnan(psi(np.array([1.0]), np.array([np.nan])))


def test_category_psi_and_shares():
    assert shares(["a", "b", "b", None], ["c"]) == {"c": 0.0, "a": 0.25, "b": 0.5, "none": 0.25}
    assert psi_categories({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}) == pytest.approx(0.0)
    assert psi_categories({"a": 0.5, "b": 0.5}, {"a": 0.9, "b": 0.1}) > 0.5


def test_profile_round_trips_through_json():
    inputs = [
        {"format": "PNG", "width": 8, "height": 8, **stats_of(np.full((8, 8, 1), v))} for v in (0.1, 0.9)
    ]
    inputs.append({"format": None, "width": None, "height": None, **stats_of(np.zeros((8, 8, 1)))})
    profile = build_profile(inputs, ["a", "b", "b"], [0.9, 0.6, 0.6], ["a", "b", "c"])
    assert profile["class_shares"] == {"a": pytest.approx(1 / 3), "b": pytest.approx(2 / 3), "c": 0.0}
    assert profile["formats"] == {"PNG": pytest.approx(2 / 3), "none": pytest.approx(1 / 3)}
    assert profile["confidence_mean"] == pytest.approx(0.7)
    # Pooled histogram: one image all in bin 0 (0.1), one in bin 7 (0.9), one in bin 0 (0.0).
    np.testing.assert_allclose(profile["intensity_hist"], [2 / 3, 0, 0, 0, 0, 0, 0, 1 / 3])
    back = profile_from_json(json.loads(json.dumps(profile_to_json(profile))))
    np.testing.assert_allclose(back["features"]["width"], [8, 8, np.nan])
    np.testing.assert_allclose(back["features"]["mean"], [0.1, 0.9, 0.0], atol=1e-5)
    assert back["n"] == 3 and back["class_shares"] == pytest.approx(profile["class_shares"])
