"""TFRecord snapshots of a validated dataset: written once, read by every epoch and every worker.

`mlops dataset snapshot --data SOURCE --out DIR|gs://...` writes, per split, shards of
`tf.train.Example`s holding the image already through core.preprocessing (float32 tensor), its label
index, content hash and path; test-split records also keep the original file bytes, so evaluation,
golden examples and the reference profile read the very files the source held. `snapshot.json`
(written last: a snapshot exists once it does) keeps the source's lineage and fingerprint, every
file's content hash, label and split, the dataset statistics and each shard's sha256.

Reading verifies each shard's sha256 and recomputes the fingerprint from the stored content hashes,
so a snapshot trains under its source's fingerprint and a damaged one trains nothing. Shards are
contiguous runs of the source's file order, so a snapshot feeds training the same elements in the
same order as its source folder, and with several workers it is sharded by file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import MlopsError
from core.preprocessing import PreprocessSpec
from core.safe_paths import UnsafePath, check_name, check_plain_name, safe_join
from training.data import Dataset, Item
from training.sources import Snapshot
from training.split import SPLITS, split_dataset

META = "snapshot.json"
FORMAT = "mlops-xray-tfrecord-snapshot/1"
# Shuffle buffer cap: 4096 images of 224x224x3 float32 are 2.4 GB; a folder shuffles its whole split.
SHUFFLE_BUFFER = 4096
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
IMAGES_PER_SHARD = 1024  # ~4 MiB of 32x32 tensors, ~16 MiB at 64 px: big enough to stream, small to spread


def is_snapshot(root: Path) -> bool:
    """Whether a resolved dataset folder is a TFRecord snapshot (it has snapshot.json)."""
    return (root / META).is_file()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint_of(items: list[dict[str, str]]) -> str:
    """The fingerprint Dataset.fingerprint gives the same (label, content hash) pairs."""
    return Dataset("", Path("."), [], [Item(i["path"], i["sha256"], i["label"]) for i in items]).fingerprint


# --- writing ----------------------------------------------------------------------------------------


def _chunks(items: list[Item], shards: int) -> list[list[Item]]:
    """Contiguous runs of items (file order kept), at most `shards` of them, none empty."""
    count = max(1, min(shards, len(items)))
    size = math.ceil(len(items) / count)
    return [items[i : i + size] for i in range(0, len(items), size)]


def _write_shard(
    path: Path, dataset: Dataset, items: list[Item], spec: PreprocessSpec, keep_files: bool
) -> int:
    """One TFRecord file of preprocessed examples; returns how many it holds."""
    import tensorflow as tf

    from training.inputs import image_dataset

    index = {c: i for i, c in enumerate(dataset.classes)}
    files = [dataset.path_of(i) for i in items]
    # The training input pipeline itself decodes (DICOM included) and preprocesses: one function.
    tensors = image_dataset(files, [index[i.label] for i in items], spec, 64, cache=False).unbatch()

    def feature(value: bytes | int) -> tf.train.Feature:
        if isinstance(value, int):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    with tf.io.TFRecordWriter(str(path)) as writer:
        for item, file, (image, label) in zip(items, files, tensors, strict=True):
            fields = {
                "image": feature(tf.io.serialize_tensor(image).numpy()),
                "label": feature(int(label)),
                "sha256": feature(item.sha256.encode()),
                "path": feature(item.path.encode()),
            }
            if keep_files:
                fields["encoded"] = feature(Path(file).read_bytes())
            writer.write(tf.train.Example(features=tf.train.Features(feature=fields)).SerializeToString())
    return len(items)


def write_local(
    dataset: Dataset,
    out: Path,
    *,
    spec: PreprocessSpec,
    rule: dict,
    statistics: dict[str, Any],
    validation: dict[str, Any] | None,
    shards: int,
    log,
) -> dict[str, Any]:
    """Write the shards and snapshot.json (last) into an empty folder; returns the metadata."""
    if out.exists() and any(out.iterdir()):
        raise MlopsError(f"snapshot folder {out} is not empty; give a new folder (snapshots are immutable)")
    out.mkdir(parents=True, exist_ok=True)
    splits = split_dataset(dataset, rule["val_fraction"], rule["test_fraction"])
    where = {i.sha256 + i.path: name for name, items in splits.items() for i in items}
    meta_shards: dict[str, list[dict[str, Any]]] = {}
    for name in SPLITS:
        items = splits[name]
        count = shards or math.ceil(len(items) / IMAGES_PER_SHARD)
        chunks = _chunks(items, count) if items else []
        meta_shards[name] = []
        for number, chunk in enumerate(chunks):
            file = f"{name}-{number:05d}-of-{len(chunks):05d}.tfrecord"
            written = _write_shard(out / file, dataset, chunk, spec, keep_files=name == "test")
            meta_shards[name].append({"file": file, "records": written, "sha256": _sha256(out / file)})
        log(f"snapshot {name}: {len(items)} images in {len(chunks)} shard(s)")
    source = dataset.source.lineage() if dataset.source else {"kind": "folder", "uri": dataset.uri}
    meta = {
        "format": FORMAT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source,
        "fingerprint": dataset.fingerprint,
        "classes": list(dataset.classes),
        "preprocessing": spec.to_dict(),
        "split_rule": rule,
        "items": [
            {"path": i.path, "sha256": i.sha256, "label": i.label, "split": where[i.sha256 + i.path]}
            for i in dataset.items
        ],
        "skipped": dataset.skipped,
        "statistics": statistics,
        "validation": validation,
        "shards": meta_shards,
    }
    (out / META).write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def upload(local: Path, uri: str, log) -> None:
    """Copy a written snapshot to gs://BUCKET/PREFIX: shards first, snapshot.json last."""
    from core.gcs import storage_client
    from training.gcs import split_uri

    bucket_name, prefix = split_uri(uri)
    bucket = storage_client().bucket(bucket_name)
    if any(True for _ in storage_client().list_blobs(bucket_name, prefix=prefix, max_results=1)):
        raise MlopsError(f"snapshot location {uri} already holds objects; give a new prefix")
    files = [*sorted(p for p in local.iterdir() if p.name != META), local / META]
    for path in files:
        # if_generation_match=0: never overwrite an object someone else wrote meanwhile.
        bucket.blob(prefix + path.name).upload_from_filename(str(path), if_generation_match=0)
    log(f"uploaded {len(files)} files to {uri}")


# --- reading ----------------------------------------------------------------------------------------


@dataclass
class Records:
    """A verified snapshot's shards: tf.data inputs of stored tensors, per split."""

    root: Path
    meta: dict[str, Any]

    @property
    def statistics(self) -> dict[str, Any] | None:
        return self.meta.get("statistics")

    def files(self, split: str) -> list[str]:
        return [str(self.root / shard["file"]) for shard in self.meta["shards"][split]]

    def shard_count(self, split: str) -> int:
        return len(self.meta["shards"][split])

    def check_split_rule(self, rule: dict, spec: PreprocessSpec) -> None:
        """The snapshot was split and preprocessed as this run would do it, else a clear error."""
        if self.meta["split_rule"] != rule:
            raise MlopsError(
                f"snapshot {self.root} was split with {self.meta['split_rule']}, this run uses {rule}; "
                "write a new snapshot with the same settings"
            )
        if PreprocessSpec.from_dict(self.meta["preprocessing"]) != spec:
            raise MlopsError(
                f"snapshot {self.root} holds images preprocessed as {self.meta['preprocessing']}, this run "
                f"needs {spec.to_dict()}; write a new snapshot with --image-size {spec.image_size}"
            )

    def dataset(self, split: str, batch_size: int, shuffle_seed: int | None = None):
        """(image, label) batches from the split's shards, in the source's order (then shuffled)."""
        import tensorflow as tf

        spec = PreprocessSpec.from_dict(self.meta["preprocessing"])
        shape = (spec.image_size, spec.image_size, spec.channels)
        schema = {
            "image": tf.io.FixedLenFeature([], tf.string),
            "label": tf.io.FixedLenFeature([], tf.int64),
        }

        def parse(record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            example = tf.io.parse_single_example(record, schema)
            image = tf.ensure_shape(tf.io.parse_tensor(example["image"], tf.float32), shape)
            return image, tf.cast(example["label"], tf.int32)

        total = sum(shard["records"] for shard in self.meta["shards"][split])
        # A list of files, read in order: FILE auto-sharding hands each worker its own shards.
        ds = tf.data.TFRecordDataset(self.files(split), num_parallel_reads=None)
        # Its size, as a folder's pipeline knows it: Keras runs epochs over a sized input the same way.
        ds = ds.apply(tf.data.experimental.assert_cardinality(total))
        # No cache: parsing stored tensors is cheap, and a snapshot may be far larger than memory.
        ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if shuffle_seed is not None:
            buffer = min(total, SHUFFLE_BUFFER)  # = the folder pipeline's (the whole split) up to the cap
            ds = ds.shuffle(buffer, seed=shuffle_seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _check_names(root: Path, meta: dict[str, Any]) -> None:
    """Every name snapshot.json gives is safe before any is read or written (core.safe_paths).

    A shard is a plain file of the snapshot folder; an item's path becomes a file under the cache when
    the test split is extracted; the fingerprint names a cache folder.
    """
    for split, shards in meta["shards"].items():
        for shard in shards:
            what = f"snapshot {root}: shard of the {split} split"
            safe_join(root, check_plain_name(shard["file"], what), what)
    for item in meta["items"]:
        check_name(item["path"], f"snapshot {root}: file")
    if not isinstance(meta["fingerprint"], str) or not _FINGERPRINT.fullmatch(meta["fingerprint"]):
        raise MlopsError(f"snapshot {root}: its fingerprint {meta['fingerprint']!r} is not a sha256")


def _verify(root: Path, meta: dict[str, Any]) -> None:
    """Safe names, and every shard's sha256 and the fingerprint match snapshot.json, else nothing trains."""
    if meta.get("format") != FORMAT:
        raise MlopsError(f"snapshot {root}: unknown format {meta.get('format')!r} (this code reads {FORMAT})")
    try:
        _check_names(root, meta)
    except UnsafePath as exc:
        raise UnsafePath(f"{exc}; nothing trained: the snapshot was altered") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise MlopsError(f"snapshot {root}: {META} is malformed ({exc!r}); nothing trained") from None
    for split, shards in meta["shards"].items():
        for shard in shards:
            path = root / shard["file"]
            if not path.is_file():
                raise MlopsError(
                    f"snapshot {root}: shard {shard['file']} ({split}) is missing; nothing trained"
                )
            actual = _sha256(path)
            if actual != shard["sha256"]:
                raise MlopsError(
                    f"snapshot {root}: shard {shard['file']} has sha256 {actual[:16]}…, snapshot.json "
                    f"recorded {shard['sha256'][:16]}…: the snapshot was altered or damaged; nothing "
                    "trained. Write it again with mlops dataset snapshot"
                )
    if fingerprint_of(meta["items"]) != meta["fingerprint"]:
        raise MlopsError(
            f"snapshot {root}: its file list does not give its recorded fingerprint; nothing trained"
        )


def _extract_test_files(root: Path, meta: dict[str, Any], target: Path) -> None:
    """The test split's original files under target (evaluation, golden examples, the profile read them)."""
    import tensorflow as tf

    schema = {"path": tf.io.FixedLenFeature([], tf.string), "encoded": tf.io.FixedLenFeature([], tf.string)}
    expected = {i["path"]: i["sha256"] for i in meta["items"] if i["split"] == "test"}
    files = [str(root / shard["file"]) for shard in meta["shards"]["test"]]
    for record in tf.data.TFRecordDataset(files):
        example = tf.io.parse_single_example(record, schema)
        rel, data = example["path"].numpy().decode(), example["encoded"].numpy()
        if hashlib.sha256(data).hexdigest() != expected.get(rel):
            raise MlopsError(f"snapshot {root}: test file {rel} does not match its recorded content hash")
        path = safe_join(target, rel, f"snapshot {root}: test file")
        if not path.is_file() or _sha256(path) != expected[rel]:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


def open_snapshot(snapshot: Snapshot, cache_dir: Path, log) -> Dataset:
    """A verified snapshot as a Dataset: its source's fingerprint, its stored tensors as inputs."""
    root = snapshot.root
    try:
        meta = json.loads((root / META).read_text())
    except (OSError, ValueError) as exc:
        raise MlopsError(f"snapshot {root}: cannot read {META}: {exc}") from None
    _verify(root, meta)
    files = cache_dir / "snapshots" / meta["fingerprint"][:16]
    _extract_test_files(root, meta, files)
    items = [Item(i["path"], i["sha256"], i["label"]) for i in meta["items"]]
    shards = sum(len(s) for s in meta["shards"].values())
    log(f"TFRecord snapshot of {meta['source'].get('uri')}: {shards} shards verified")
    details = {**snapshot.details, "format": "tfrecord-snapshot", "snapshot_of": meta["source"]}
    source = dataclasses.replace(snapshot, details=details)
    return Dataset(
        snapshot.uri, files, list(meta["classes"]), items, list(meta["skipped"]), source, Records(root, meta)
    )
