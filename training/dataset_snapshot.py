"""`mlops dataset snapshot`: SOURCE through the resolve, load and validate stages, then written as a
TFRecord snapshot (training/snapshot.py) to a folder or gs:// prefix."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from core.errors import CheckFailed, MlopsError
from core.preprocessing import PreprocessSpec
from training import stages
from training.snapshot import upload, write_local
from training.split import split_rule


def write_snapshot(settings, data_uri: str, out: str, shards: int, log) -> dict[str, Any]:
    """Validate SOURCE, then write its TFRecord snapshot to DIR or gs://; returns a summary."""
    import tempfile

    cfg = settings.train
    dataset = stages.load(settings, stages.resolve(settings, data_uri, log), log)
    if dataset.records is not None:
        raise MlopsError(f"{data_uri} is already a snapshot")
    spec = PreprocessSpec(image_size=cfg.image_size, channels=cfg.channels)
    checked = stages.validate(settings, dataset, spec, None, "train", log)
    statistics, check = checked.statistics, checked.check
    if check.stopped:
        raise CheckFailed(f"data validation stopped the snapshot: {' | '.join(check.stops)}; nothing written")
    rule = split_rule(cfg.val_fraction, cfg.test_fraction)

    def write(folder: Path) -> dict[str, Any]:
        return write_local(
            dataset,
            folder,
            shards=shards,
            log=log,
            spec=spec,
            rule=rule,
            statistics=statistics,
            validation=check.to_dict(),
        )

    if out.startswith("gs://"):
        settings.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=settings.cache_dir) as tmp:
            meta = write(Path(tmp) / "snapshot")
            upload(Path(tmp) / "snapshot", out, log)
    else:
        meta = write(Path(out))
    print(f"snapshot of {dataset.uri} written to {out}", file=sys.stderr, flush=True)
    return {
        "out": out,
        "fingerprint": meta["fingerprint"],
        "images": len(meta["items"]),
        "shards": {name: len(s) for name, s in meta["shards"].items()},
        "preprocessing": meta["preprocessing"],
    }
