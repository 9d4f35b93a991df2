"""Data validation before training: image statistics, schema skew stops, value skew warns."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.preprocessing import PreprocessSpec
from core.settings import ValidationSettings
from registry.manifest import Manifest
from training.data import scan_folder
from training.data_validation import validate
from training.dataset_stats import describe_files, summarize

CFG = ValidationSettings()
SPEC = PreprocessSpec(image_size=16, channels=1)  # the size make_dataset writes: no resampling


def _write(path: Path, pixels: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode=mode).save(path)


def make_dataset(
    root: Path,
    counts: dict[str, int],
    *,
    level: int = 100,
    size: int = 16,
    rgb: bool = False,
    noise: int = 30,
) -> Path:
    """Class folders of noisy images around a grey level; each image distinct (a different seed)."""
    for c, (label, n) in enumerate(counts.items()):
        for i in range(n):
            rng = np.random.default_rng(10_000 * c + i + 7 * level + size)
            grey = np.clip(level + rng.integers(-noise, noise + 1, (size, size)), 0, 255).astype(np.uint8)
            pixels = np.stack([grey] * 3, axis=-1) if rgb else grey
            _write(root / label / f"{i:03d}.png", pixels)
    return root


def reference_from(root: Path, ref: str = "production:4") -> tuple[str, dict]:
    """A reference version's manifest as training records it: classes and the dataset statistics."""
    dataset = scan_folder(root)
    statistics = summarize(dataset, CFG.stats_sample, SPEC)
    return ref, Manifest.from_dict({"classes": dataset.classes, "dataset": {"statistics": statistics}})


def check(root: Path, reference, mode: str = "retrain", cfg: ValidationSettings = CFG):
    dataset = scan_folder(root)
    return validate(dataset, summarize(dataset, cfg.stats_sample, SPEC), reference, cfg, mode)


def _described(path: Path, channels: int = 1) -> dict:
    (_, [described]), *_ = describe_files([path], PreprocessSpec(image_size=8, channels=channels))
    return described


def test_images_are_described_by_header_and_by_what_the_model_sees(tmp_path):
    _write(tmp_path / "grey.png", np.full((20, 10), 51, np.uint8))  # 10 wide, 20 high, 51/255 = 0.2
    grey = _described(tmp_path / "grey.png")
    assert (grey["format"], grey["width"], grey["height"], grey["channels"]) == ("PNG", 10, 20, 1)
    assert grey["mean"] == pytest.approx(0.2) and grey["std"] == pytest.approx(0.0, abs=1e-6)
    assert grey["hist"] == [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # 0.2 falls in [0.125, 0.25)
    red = np.zeros((4, 4, 4), np.uint8)
    red[..., 0], red[..., 3] = 255, 0  # pure red, fully transparent: alpha is not brightness
    _write(tmp_path / "red.png", red, "RGBA")
    assert _described(tmp_path / "red.png", channels=3)["mean"] == pytest.approx(1 / 3, abs=1e-4)
    as_grey = _described(tmp_path / "red.png", channels=1)  # a grey model sees red's luma (BT.601)
    assert as_grey["channels"] == 4 and as_grey["mean"] == pytest.approx(0.299, abs=1 / 255)
    Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(tmp_path / "deep.png")  # 16-bit grey
    assert _described(tmp_path / "deep.png")["mean"] == pytest.approx(1.0)
    palette = Image.new("P", (4, 4))
    palette.putpalette([0, 0, 0, 255, 255, 255])
    palette.putdata([1] * 16)  # index 1 = white: the palette's colour, not the index, is the intensity
    palette.save(tmp_path / "palette.png")
    assert _described(tmp_path / "palette.png")["mean"] == pytest.approx(1.0)
    assert _described(tmp_path / "palette.png")["channels"] == 3  # the colours a palette expands to


def test_summary_records_shares_size_channels_intensity(tmp_path):
    root = make_dataset(tmp_path / "d", {"a": 6, "b": 2}, level=51, size=12, noise=0)
    stats = summarize(scan_folder(root), 100, SPEC)
    assert stats["images"] == 8 and stats["sampled"] == 8
    assert stats["class_shares"] == {"a": 0.75, "b": 0.25}
    assert stats["width"] == {"median": 12.0, "p05": 12.0, "p95": 12.0}
    assert stats["channels"] == {"1": 1.0}
    assert stats["intensity"] == pytest.approx(0.2) and stats["contrast"] == 0.0
    assert summarize(scan_folder(root), 3, SPEC)["sampled"] == 3  # a sample, as configured


def test_the_same_kind_of_data_passes_without_findings(tmp_path):
    reference = reference_from(make_dataset(tmp_path / "old", {"a": 12, "b": 12, "c": 12}))
    result = check(make_dataset(tmp_path / "new", {"a": 14, "b": 13, "c": 12}, level=104), reference)
    assert result.stops == [] and result.warnings == []
    assert result.to_dict()["passed"] is True and result.reference == "production:4"


def test_a_new_class_folder_is_schema_skew_and_stops_retraining(tmp_path):
    reference = reference_from(make_dataset(tmp_path / "old", {"a": 5, "b": 5}))
    new = make_dataset(tmp_path / "new", {"a": 5, "b": 5, "effusion": 5})
    result = check(new, reference)
    assert len(result.stops) == 1
    assert "schema skew" in result.stops[0] and "unknown class folder(s): effusion" in result.stops[0]
    assert "train from scratch (mlops train)" in result.stops[0]  # says what to do
    # Training from scratch may change the class set: a note, nothing stops.
    from_scratch = check(new, reference, mode="train")
    assert from_scratch.stops == [] and "replaces the class set" in from_scratch.notes[0]


def test_a_missing_class_is_schema_skew_too(tmp_path):
    reference = reference_from(make_dataset(tmp_path / "old", {"a": 5, "b": 5, "c": 5}))
    result = check(make_dataset(tmp_path / "new", {"a": 5, "b": 5}), reference)
    assert result.stopped and "missing: c" in result.stops[0]


def test_unusable_files_stop_retraining_but_not_training_from_scratch(tmp_path):
    root = make_dataset(tmp_path / "d", {"a": 5, "b": 5})
    (root / "a" / "cut.png").write_bytes((root / "a" / "000.png").read_bytes()[:40])
    reference = reference_from(make_dataset(tmp_path / "old", {"a": 5, "b": 5}))
    result = check(root, reference)
    assert result.stopped
    assert "1 unusable file(s)" in result.stops[0] and "a/cut.png: cannot decode image" in result.stops[0]
    assert "Replace or remove them and push again" in result.stops[0]
    assert not check(root, reference, mode="train").stopped
    allowed = dataclasses.replace(CFG, max_bad_files=1)
    assert not check(root, reference, cfg=allowed).stopped


@pytest.mark.parametrize(
    ("new", "finding"),
    [
        ({"counts": {"a": 30, "b": 3, "c": 3}}, "class balance moved 0.50"),
        ({"size": 32}, "median image width 32 px vs 16 px"),
        ({"rgb": True}, "channel counts 3 1.00 vs 1 1.00"),
        ({"level": 180}, "mean intensity 0.70"),  # 180/255 against 100/255, give or take the noise
        ({"noise": 90}, "mean contrast"),
    ],
)
def test_value_skew_is_a_warning_that_names_the_drift(tmp_path, new, finding):
    reference = reference_from(make_dataset(tmp_path / "old", {"a": 12, "b": 12, "c": 12}))
    counts = new.pop("counts", {"a": 12, "b": 12, "c": 12})
    result = check(make_dataset(tmp_path / "new", counts, **new), reference)
    assert result.stops == []
    assert len(result.warnings) >= 1
    assert any(finding in w for w in result.warnings), result.warnings
    assert all(w.startswith("value skew:") and "production:4's training data" in w for w in result.warnings)
    strict = dataclasses.replace(CFG, stop_on_value_skew=True)
    stopped = check(make_dataset(tmp_path / "new", counts, **new), reference, cfg=strict)
    assert stopped.stopped and stopped.warnings == []
    assert "validation.stop_on_value_skew is on" in stopped.stops[0]


def test_thresholds_come_from_the_settings(tmp_path):
    reference = reference_from(make_dataset(tmp_path / "old", {"a": 12, "b": 12}))
    brighter = make_dataset(tmp_path / "new", {"a": 12, "b": 12}, level=140)  # about +0.16 intensity
    assert any("mean intensity" in w for w in check(brighter, reference).warnings)
    lenient = dataclasses.replace(CFG, intensity_max_shift=0.3)
    assert not any("mean intensity" in w for w in check(brighter, reference, cfg=lenient).warnings)


def test_a_reference_without_statistics_skips_value_checks_with_a_note(tmp_path):
    root = make_dataset(tmp_path / "d", {"a": 5, "b": 5}, level=200)
    old = Manifest.from_dict({"classes": ["a", "b"], "dataset": {"fingerprint": "x"}})
    result = check(root, ("testing:1", old))
    assert result.warnings == [] and result.stops == []
    assert "recorded no image statistics" in result.notes[0]
    assert "no reference model" in check(root, None).notes[0]
