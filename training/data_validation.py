"""Data validation before training: the new dataset against the data the reference model learned from.

Google's MLOps level 1: stop on schema skew (a different class set; when retraining, unusable files
too), flag value skew (class balance, image size, channels, intensity or contrast drifted beyond
`[validation]` thresholds). Stops mean nothing is trained; warnings are recorded in the lineage
(`dataset.validation`) and the email. Every message says what to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.settings import ValidationSettings
from training.data import Dataset

if TYPE_CHECKING:
    from registry.manifest import Manifest

MODES = ("train", "retrain")
MAX_LISTED_FILES = 5


@dataclass
class DataCheck:
    """The verdict on one dataset: what stops training, what is only a warning, and on what basis."""

    reference: str | None  # the version whose training data this dataset was compared with
    stops: list[str] = field(default_factory=list)  # schema skew and unusable files: nothing trained
    warnings: list[str] = field(default_factory=list)  # value skew: trained, recorded, emailed
    notes: list[str] = field(default_factory=list)
    label_issues: dict[str, Any] | None = None  # training.label_check.find_label_issues, when it ran

    @property
    def stopped(self) -> bool:
        return bool(self.stops)

    def to_dict(self) -> dict[str, Any]:
        """The manifest's `dataset.validation`."""
        return {
            "reference": self.reference,
            "passed": not self.stops,
            "stops": list(self.stops),
            "warnings": list(self.warnings),
            "notes": list(self.notes),
            "label_issues": self.label_issues,
        }

    def lines(self) -> list[str]:
        """The report, one line per finding."""
        basis = f"against {self.reference}'s training data" if self.reference else "(no reference model)"
        verdict = "STOPPED" if self.stops else ("passed with warnings" if self.warnings else "passed")
        found = [f"  stop: {m}" for m in self.stops] + [f"  warning: {m}" for m in self.warnings]
        return [f"data validation {basis}: {verdict}", *found, *(f"  note: {m}" for m in self.notes)]


def _distance(new: dict[str, float], old: dict[str, float]) -> float:
    """Total variation distance between two share tables: 0 same, 1 disjoint."""
    keys = set(new) | set(old)
    return 0.5 * sum(abs(new.get(k, 0.0) - old.get(k, 0.0)) for k in keys)


def _shares(table: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in sorted(table.items()))


def _schema(dataset: Dataset, old_classes: list[str], ref: str, mode: str, check: DataCheck) -> None:
    new = list(dataset.classes)
    if new == old_classes:
        return
    added = sorted(set(new) - set(old_classes))
    missing = sorted(set(old_classes) - set(new))
    detail = "; ".join(
        part
        for part in (
            f"unknown class folder(s): {', '.join(added)}" if added else "",
            f"missing: {', '.join(missing)}" if missing else "",
        )
        if part
    )
    if mode == "train":
        check.notes.append(
            f"classes {new} differ from {ref}'s {old_classes} ({detail}): training from scratch "
            "replaces the class set"
        )
        return
    check.stops.append(
        f"schema skew: the data's classes {new} differ from {ref}'s {old_classes} ({detail}). Rename or "
        "remove the class folders and push again, or train from scratch (mlops train) if the class set "
        "really changed"
    )


def _bad_files(dataset: Dataset, cfg: ValidationSettings, check: DataCheck) -> None:
    bad = dataset.skipped
    if len(bad) <= cfg.max_bad_files:
        return
    listed = "; ".join(f"{row['path']}: {row['reason']}" for row in bad[:MAX_LISTED_FILES])
    more = f" (and {len(bad) - MAX_LISTED_FILES} more)" if len(bad) > MAX_LISTED_FILES else ""
    check.stops.append(
        f"{len(bad)} unusable file(s) in the dataset (validation.max_bad_files = {cfg.max_bad_files}): "
        f"{listed}{more}. Replace or remove them and push again"
    )


def _value_skew(new: dict[str, Any], old: dict[str, Any], ref: str, cfg: ValidationSettings) -> list[str]:
    """Each statistic that drifted beyond its threshold, with what to do about it."""
    found = []
    basis = f"{ref}'s training data"
    moved = _distance(new["class_shares"], old["class_shares"])
    if moved > cfg.class_balance_max_shift:
        found.append(
            f"value skew: class balance moved {moved:.2f} from {basis} (limit "
            f"{cfg.class_balance_max_shift:.2f}): now {_shares(new['class_shares'])}, was "
            f"{_shares(old['class_shares'])}. Check the new images' labels, or add images of the classes "
            "that shrank"
        )
    for side in ("width", "height"):
        a, b = float(new[side]["median"]), float(old[side]["median"])
        ratio = max(a, b) / max(min(a, b), 1e-9)
        if ratio > cfg.size_max_ratio:
            found.append(
                f"value skew: median image {side} {a:.0f} px vs {b:.0f} px in {basis} (ratio {ratio:.2f} > "
                f"{cfg.size_max_ratio:.2f}). Check how the new images were exported (resolution, cropping)"
            )
    moved = _distance(new["channels"], old["channels"])
    if moved > cfg.channels_max_shift:
        found.append(
            f"value skew: channel counts {_shares(new['channels'])} vs {_shares(old['channels'])} in {basis} "
            f"(shift {moved:.2f} > {cfg.channels_max_shift:.2f}). Check the export (grayscale or colour)"
        )
    for name, limit, hint in (
        ("intensity", cfg.intensity_max_shift, "exposure or windowing"),
        ("contrast", cfg.contrast_max_shift, "windowing or post-processing"),
    ):
        a, b = float(new[name]), float(old[name])
        if abs(a - b) > limit:
            found.append(
                f"value skew: mean {name} {a:.3f} vs {b:.3f} in {basis} (shift {abs(a - b):.3f} > "
                f"{limit:.3f}). Check the {hint} of the new images"
            )
    return found


def validate(
    dataset: Dataset,
    statistics: dict[str, Any],
    reference: tuple[str, Manifest] | None,
    cfg: ValidationSettings,
    mode: str,
) -> DataCheck:
    """Compare a scanned dataset (and its statistics) with a reference version's manifest.

    mode "retrain" (the data pipeline): schema skew and more than max_bad_files unusable files stop.
    mode "train" (from scratch): nothing stops; a new class set is a note, bad files stay skipped and
    reported, value skew is a warning.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    check = DataCheck(reference[0] if reference else None)
    if mode == "retrain":
        _bad_files(dataset, cfg, check)
    if reference is None:
        check.notes.append(
            "no reference model: nothing to compare with (this version records its statistics)"
        )
        return check
    ref, manifest = reference
    _schema(dataset, list(manifest.classes), ref, mode, check)
    old = manifest.dataset.statistics
    if old is None:
        check.notes.append(
            f"{ref} recorded no image statistics (trained before data validation): value-skew checks "
            "skipped; this version records them"
        )
    elif list(dataset.classes) == list(manifest.classes):
        check.warnings += _value_skew(statistics, dict(old), ref, cfg)
    if mode == "retrain" and cfg.stop_on_value_skew and check.warnings:
        check.stops += [f"{m} (validation.stop_on_value_skew is on)" for m in check.warnings]
        check.warnings = []
    return check
