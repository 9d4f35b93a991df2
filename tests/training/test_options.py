"""Config layering for training: code defaults → mlops.toml → environment → CLI options."""

from __future__ import annotations

import argparse

import pytest

from core.errors import UsageError
from core.preprocessing import PreprocessSpec
from core.settings import load_settings
from training import stages
from training.cli import apply_train_options


def _args(**given) -> argparse.Namespace:
    return argparse.Namespace(**given)


def test_cli_options_beat_config_and_environment(tmp_path, monkeypatch):
    (tmp_path / "mlops.toml").write_text("[train]\nepochs = 7\nbatch_size = 8\n[gate]\nrecall_floor = 0.5\n")
    monkeypatch.setenv("MLOPS_TRAIN_EPOCHS", "5")
    settings = load_settings(config_file=tmp_path / "mlops.toml")
    assert (settings.train.epochs, settings.train.batch_size) == (5, 8)  # env beats the file
    applied = apply_train_options(settings, _args(epochs=2, batch_size=None, recall_floor=0.1))
    assert applied.train.epochs == 2 and applied.train.batch_size == 8
    assert applied.gate.recall_floor == 0.1 and applied.gate.accuracy_threshold == 0.8


def test_non_positive_values_are_usage_errors(settings):
    with pytest.raises(UsageError, match="--batch-size must be positive"):
        apply_train_options(settings, _args(batch_size=0))


def test_training_sees_only_train_and_val(tiny_dataset, settings):
    """The test split never reaches fit(): early stopping and checkpoints use val only."""

    def quiet(_: str) -> None:
        pass

    dataset = stages.load(settings, stages.resolve(settings, str(tiny_dataset), quiet), quiet)
    checked = stages.validate(settings, dataset, PreprocessSpec(16, 1), None, "train", quiet)
    prepared = stages.split(settings, checked, quiet)
    assert set(prepared.tf_data) == {"train", "val"}
    for name in ("train", "val"):
        seen = sum(int(labels.shape[0]) for _, labels in prepared.tf_data[name])
        assert seen == len(prepared.splits[name])
    test_hashes = {i.sha256 for i in prepared.splits["test"]}
    assert test_hashes and not test_hashes & {
        i.sha256 for i in prepared.splits["train"] + prepared.splits["val"]
    }
