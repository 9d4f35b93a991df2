"""CLI verb retrain (a thin wrapper over retraining.retrain.retrain_and_register)."""

from __future__ import annotations

import argparse

from core.settings import Settings
from training.cli import (
    add_common_train_options,
    apply_train_options,
    json_on_gate_failure,
    print_summary,
    start_cluster,
)


def _retrain(args: argparse.Namespace, settings: Settings) -> int:
    from retraining.retrain import retrain_and_register

    settings = apply_train_options(settings, args)
    start_cluster(settings)
    with json_on_gate_failure(args.json):
        summary = retrain_and_register(
            settings, args.data, force=args.force, actor=args.actor, reason=args.reason
        )
    print_summary(summary, args.json)
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this area's verbs."""
    parser = subparsers.add_parser(
        "retrain",
        help="fine-tune the production model on new data, gate and register it",
        description="Validate the data against the training data of production:current (else "
        "testing:latest), fine-tune that model on it with the fine_tune_* settings, gate it against "
        "production on the same test split and register it with its parent and the dataset's source "
        "and revision recorded. The parent's revision, or the same images (fingerprint), exits 0 "
        "without training unless --force. Exit 3 when data validation (schema skew, unusable files) "
        "or the gate says no (nothing registered).",
    )
    add_common_train_options(parser)
    parser.add_argument(
        "--epochs", dest="fine_tune_epochs", type=int, metavar="N", help="override train.fine_tune_epochs"
    )
    parser.add_argument(
        "--learning-rate",
        dest="fine_tune_learning_rate",
        type=float,
        metavar="LR",
        help="override train.fine_tune_learning_rate",
    )
    parser.add_argument("--force", action="store_true", help="retrain even when the data is unchanged")
    parser.set_defaults(handler=_retrain)
