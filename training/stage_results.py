"""What each training stage hands the next (training/stages.py): frozen, typed, complete when made.

resolve → Snapshot (training.sources) → load → Dataset (training.data) → validate → Validated →
split → Split → train → Trained → evaluate → Evaluated → gate → Gated → register → Registered.
Each result keeps the one before it, so a later stage reaches everything earlier stages learned.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.preprocessing import PreprocessSpec
from registry.manifest import Manifest, to_json
from training.data import Dataset, Item
from training.data_validation import DataCheck


@dataclass(frozen=True)
class Validated:
    """A loaded dataset, its statistics (images as a model with `spec` sees them) and its validation."""

    dataset: Dataset
    spec: PreprocessSpec
    statistics: dict[str, Any]  # training.dataset_stats.summarize of the dataset
    check: DataCheck  # against the reference model's training data


@dataclass(frozen=True)
class Split:
    """The validated data split by content hash, and tf.data pipelines for train and val."""

    data: Validated
    splits: dict[str, list[Item]]
    tf_data: dict[str, Any]
    steps: dict[str, int] | None  # batches per epoch when the inputs repeat (multi-worker)

    @property
    def dataset(self) -> Dataset:
        return self.data.dataset

    @property
    def spec(self) -> PreprocessSpec:
        return self.data.spec

    @property
    def statistics(self) -> dict[str, Any]:
        return self.data.statistics

    @property
    def check(self) -> DataCheck:
        return self.data.check

    def test_files(self) -> list[Path]:
        """The test split's image files, in split order."""
        return [self.dataset.path_of(i) for i in self.splits["test"]]

    def test_labels(self) -> list[str]:
        return [i.label for i in self.splits["test"]]

    def val_files(self) -> list[Path]:
        """The validation split's image files (temperature scaling is fitted on them)."""
        return [self.dataset.path_of(i) for i in self.splits["val"]]

    def val_labels(self) -> list[str]:
        return [i.label for i in self.splits["val"]]


@dataclass(frozen=True)
class Start:
    """Where training starts: the weights (built or loaded in the strategy's scope), how long, how fast."""

    model: Any  # a keras.Model
    epochs: int
    learning_rate: float
    params: dict[str, Any]  # the manifest's params before the fit adds epochs_run and train_seconds
    parent: dict[str, Any] | None  # {"ref", "version", "area"} of the model fine-tuned, None from scratch


@dataclass(frozen=True)
class Trained:
    """The fitted model (a plain float32 copy on the chief), its history and the complete params."""

    split: Split
    model: Any  # a keras.Model
    history: dict[str, list[float]]
    params: dict[str, Any]
    parent: dict[str, Any] | None


@dataclass(frozen=True)
class Evaluated:
    """The trained model's predictions and metrics on the test split, and its calibration."""

    trained: Trained
    probabilities: np.ndarray  # the model's own (uncalibrated) outputs; argmax is the same either way
    metrics: dict[str, Any]
    calibration: dict[str, Any] | None = None  # training.calibration.calibrate: the manifest's part
    # The validation split's (uncalibrated) outputs and class indices: the temperature and the
    # deferral threshold are chosen on them, read once (a TFRecord snapshot has no files to reread).
    val_probabilities: np.ndarray | None = None
    val_labels: np.ndarray | None = None


@dataclass(frozen=True)
class Gated:
    """The gate's decision (docs/manifest.md) and the production baseline it compared with."""

    evaluated: Evaluated
    baseline: dict[str, Any] | None  # production:current on the same test split; None when empty
    decision: dict[str, Any]


@dataclass(frozen=True)
class Candidate:
    """The candidate written to its run folder: model, evidence, report and manifest."""

    gated: Gated
    manifest: Manifest
    run: Path  # settings.runs_dir/<stamp>-<mode>
    folder: Path  # run/candidate: what the registry copies
    report: Path

    def summary(self, ref: str | None, version: int | None, report: str) -> dict[str, Any]:
        """What train and retrain print (--json), registered (ref, version) or refused by the gate."""
        dataset = self.manifest.dataset
        return {
            "ref": ref,
            "version": version,
            "metrics": self.gated.evaluated.metrics,
            "gate": self.gated.decision,
            "report": report,
            "run_dir": str(self.run),
            "parent": self.gated.evaluated.trained.parent,
            "dataset": {
                "uri": dataset.uri,
                "revision": dataset.source.revision,
                "fingerprint": dataset.fingerprint,
            },
            "validation": to_json(dataset.validation),
        }


@dataclass(frozen=True)
class Registered:
    """The candidate registered in testing."""

    candidate: Candidate
    version: Any  # registry.ModelVersion

    def summary(self) -> dict[str, Any]:
        return self.candidate.summary(
            self.version.ref, self.version.version, f"{self.version.uri}/report.html"
        )
