"""CLI verbs of training: demo-data and train (thin wrappers over plain functions)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from core.errors import UsageError
from core.settings import Settings
from training.summary import json_on_gate_failure, print_summary

ARCHITECTURES = ("small_cnn", "mobilenet_v3_small", "efficientnet_b0")  # = training.model.ARCHITECTURES
STRATEGIES = ("auto", "one", "mirrored", "multi-worker")  # = training.distribute.STRATEGIES


def apply_train_options(settings: Settings, args: argparse.Namespace) -> Settings:
    """Settings with the CLI's [train] and [gate] options applied (None = not given)."""
    train: dict[str, Any] = {  # argparse values: checked below and by the settings
        k: getattr(args, k, None)
        for k in (
            "epochs",
            "image_size",
            "architecture",
            "batch_size",
            "learning_rate",
            "seed",
            "weights",
            "fine_tune_epochs",
            "fine_tune_learning_rate",
            "strategy",
            "mixed_precision",
        )
    }
    train = {k: v for k, v in train.items() if v is not None}
    gate: dict[str, Any] = {
        "accuracy_threshold": getattr(args, "accuracy_threshold", None),
        "recall_floor": getattr(args, "recall_floor", None),
    }
    gate = {k: v for k, v in gate.items() if v is not None}
    for name, value in train.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and value <= 0 and name != "seed":
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")
    return dataclasses.replace(
        settings,
        train=dataclasses.replace(settings.train, **train),
        gate=dataclasses.replace(settings.gate, **gate),
    )


def add_common_train_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by train and retrain."""
    parser.add_argument(
        "--data",
        required=True,
        metavar="SOURCE",
        help="dataset of class sub-folders: a folder, gs://BUCKET/PREFIX, or a git repository at a "
        "revision written as pip writes it, git+URL@REV (URL file://, https:// or ssh://; REV a commit, "
        "tag or branch)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="override train.batch_size (global: split over the replicas)",
    )
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="override train.strategy: auto (multi-worker when TF_CONFIG names several workers, mirrored "
        "when more than one GPU is visible, else one), one device, mirrored (every local GPU), multi-worker",
    )
    parser.add_argument(
        "--mixed-precision",
        choices=("auto", "on", "off"),
        help="override train.mixed_precision (auto: mixed_float16 when GPUs are visible)",
    )
    parser.add_argument("--seed", type=int, metavar="N", help="override train.seed")
    parser.add_argument(
        "--accuracy-threshold", type=float, metavar="X", help="override gate.accuracy_threshold"
    )
    parser.add_argument("--recall-floor", type=float, metavar="X", help="override gate.recall_floor")
    parser.add_argument("--actor", metavar="WHO", help="who registers (default: BUILD_USER_ID or OS user)")
    parser.add_argument("--reason", default="", metavar="TEXT", help="why, for the audit log")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")


def _demo_data(args: argparse.Namespace, settings: Settings) -> int:
    from training.demo_data import write_demo_data

    if args.per_class < 3:
        raise UsageError("--per-class must be at least 3")
    out = Path(args.out) if args.out else settings.demo_data_dir
    counts = write_demo_data(out, batch=args.batch, per_class=args.per_class, size=args.size)
    total = sum(counts.values())
    if args.json:
        print(json.dumps({"out": str(out), "batch": args.batch, "added": counts}))
    else:
        print(
            f"wrote {total} images (batch {args.batch}: {', '.join(f'{c} {n}' for c, n in counts.items())}) "
            f"to {out}"
        )
    return 0


def start_cluster(settings: Settings) -> None:
    """In a pod of a multi-worker Indexed Job, TF_CONFIG from JOB_COMPLETION_INDEX (before TensorFlow)."""
    from training.tf_config import export_tf_config

    cluster = export_tf_config(settings.train)
    if cluster.workers > 1:
        role = "chief" if cluster.is_chief else "worker"
        print(f"worker {cluster.index} of {cluster.workers} ({role})", file=sys.stderr, flush=True)


def _train(args: argparse.Namespace, settings: Settings) -> int:
    from training.train import train_and_register

    settings = apply_train_options(settings, args)
    start_cluster(settings)
    print(f"training on {args.data} ...", file=sys.stderr, flush=True)
    with json_on_gate_failure(args.json):
        summary = train_and_register(settings, args.data, actor=args.actor, reason=args.reason)
    print_summary(summary, args.json)
    return 0


def _snapshot(args: argparse.Namespace, settings: Settings) -> int:
    from training.dataset_snapshot import write_snapshot
    from training.stages import log_stderr

    if args.shards < 0:
        raise UsageError(f"--shards must be 0 (automatic) or positive, got {args.shards}")
    settings = apply_train_options(settings, args)
    summary = write_snapshot(settings, args.data, args.out, args.shards, log_stderr)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        shards = ", ".join(f"{name} {n}" for name, n in summary["shards"].items())
        print(
            f"snapshot {summary['out']}: {summary['images']} images, shards {shards}; "
            f"fingerprint {summary['fingerprint'][:12]} (= its source's)"
        )
    return 0


def _add_dataset_verbs(subparsers: argparse._SubParsersAction) -> None:
    dataset = subparsers.add_parser(
        "dataset",
        help="dataset tools: snapshot a validated dataset as sharded TFRecords",
        description="Dataset tools for training at scale.",
    )
    verbs = dataset.add_subparsers(dest="dataset_command", metavar="ACTION")
    verbs.required = True
    snapshot = verbs.add_parser(
        "snapshot",
        help="write a validated dataset as sharded TFRecords (folder or gs://)",
        description="Check and validate SOURCE, then write it as sharded TFRecords: images already "
        "through the one preprocessing function, labels, content hashes and split assignment kept, "
        "snapshot.json last. `mlops train --data` reads the snapshot like any dataset; its "
        "fingerprint is its source's.",
    )
    snapshot.add_argument(
        "--data", required=True, metavar="SOURCE", help="a folder, gs://BUCKET/PREFIX or git+URL@REV"
    )
    snapshot.add_argument(
        "--out", required=True, metavar="DIR|gs://BUCKET/PREFIX", help="a new folder or prefix"
    )
    snapshot.add_argument(
        "--shards", type=int, default=0, metavar="N", help="shards per split (default: one per 1024 images)"
    )
    snapshot.add_argument("--image-size", type=int, metavar="PX", help="override train.image_size")
    snapshot.add_argument("--json", action="store_true", help="print a JSON summary")
    snapshot.set_defaults(handler=_snapshot)


def _reference_set(args: argparse.Namespace, settings: Settings) -> int:
    from core.actor import default_actor
    from training.reference_set import register_reference

    manifest = register_reference(settings, args.data, args.actor or default_actor())
    if args.json:
        print(json.dumps({k: v for k, v in manifest.items() if k != "files"}, indent=1))
    else:
        counts = ", ".join(f"{c} {n}" for c, n in manifest["class_counts"].items())
        print(
            f"registered reference set {manifest['version']} of {manifest['model']}: "
            f"{len(manifest['files'])} images ({counts}); fingerprint {manifest['fingerprint'][:12]}"
        )
    return 0


def _reference_show(args: argparse.Namespace, settings: Settings) -> int:
    from training.reference_set import in_force, reference_sets

    sets = reference_sets(settings)
    current = in_force(settings)
    rows = []
    for number in sets.versions():
        m = sets.manifest(number)
        rows.append({
            "version": number, "in_force": number == current, "fingerprint": m["fingerprint"],
            "images": len(m["files"]), "class_counts": m["class_counts"], "source": m.get("source"),
            "created_at": m.get("created_at"), "registered_by": m.get("registered_by"),
        })  # fmt: skip
    if args.json:
        print(
            json.dumps({"in_force": current, "setting": settings.gate.reference_set, "sets": rows}, indent=1)
        )
        return 0
    if not rows:
        print("no reference set registered; mlops reference set --data DIR|gs://...|git+... registers one")
    for row in rows:
        mark = "*" if row["in_force"] else " "
        print(
            f"{mark} {row['version']}: {row['images']} images, fingerprint {row['fingerprint'][:12]}, "
            f"{row['created_at']} by {row['registered_by']}"
        )
    print(f"in force ([gate] reference_set = {settings.gate.reference_set!r}): {current or 'none'}")
    return 0


def _add_reference_verbs(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reference",
        help="the locked reference set the gate also judges every candidate on",
        description="A curated evaluation dataset kept apart from pushed data, versioned in the registry "
        "(reference/<model>/<N>/, create-only). The gate scores the candidate and production on the set "
        "in force ([gate] reference_set) besides the candidate's own test split.",
    )
    verbs = parser.add_subparsers(dest="reference_command", metavar="ACTION")
    verbs.required = True
    register = verbs.add_parser(
        "set", help="register a new reference set from a dataset", description="Check, hash and store "
        "the images of DATA (class folders) as the next reference set; earlier sets stay as they were."
    )  # fmt: skip
    register.add_argument(
        "--data", required=True, metavar="URI", help="folder, gs://BUCKET/PREFIX or git+URL@REV"
    )
    register.add_argument("--actor", metavar="NAME", help="who registers it (default: the OS user)")
    register.add_argument("--json", action="store_true", help="machine-readable output")
    register.set_defaults(handler=_reference_set)
    show = verbs.add_parser("show", help="list the reference sets and which is in force", description="List.")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=_reference_show)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this area's verbs."""
    _add_dataset_verbs(subparsers)
    _add_reference_verbs(subparsers)
    demo = subparsers.add_parser(
        "demo-data",
        help="write a small synthetic dataset",
        description="Write a small synthetic grayscale dataset (3 classes, PNG, class folders). "
        "--batch 2 adds new images to the same folder to simulate a data push.",
    )
    demo.add_argument("--out", metavar="DIR", help="output folder (default <home>/data/demo)")
    demo.add_argument(
        "--batch",
        type=int,
        choices=(1, 2, 3),
        default=1,
        help="which batch of images (default 1; 3: the reference set's seed, never pushed)",
    )
    demo.add_argument(
        "--per-class", type=int, default=150, metavar="N", help="images per class (default 150)"
    )
    demo.add_argument("--size", type=int, default=64, metavar="PX", help="image side in pixels (default 64)")
    demo.add_argument("--json", action="store_true", help="print a JSON summary")
    demo.set_defaults(handler=_demo_data)

    train = subparsers.add_parser(
        "train",
        help="train a model from scratch, gate it and register it in testing",
        description="Train a model from scratch, evaluate it on the content-hash test split, gate it "
        "and register it in the testing registry. Exit 3 when the gate fails (nothing registered).",
    )
    add_common_train_options(train)
    train.add_argument("--epochs", type=int, metavar="N", help="override train.epochs")
    train.add_argument("--image-size", type=int, metavar="PX", help="override train.image_size")
    train.add_argument("--architecture", choices=ARCHITECTURES, help="override train.architecture")
    train.add_argument("--learning-rate", type=float, metavar="LR", help="override train.learning_rate")
    train.add_argument(
        "--weights", metavar="FILE", help="local weights file for a keras.applications backbone"
    )
    train.set_defaults(handler=_train)
