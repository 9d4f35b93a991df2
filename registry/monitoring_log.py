"""The store's `monitoring/` area: prediction-log and feedback batches as Parquet, one object per batch.

Layout (docs/architecture.md; registry/README.md), hive-partitioned so DuckDB and BigQuery external tables
read it as one table per kind:

    monitoring/<model>/<kind>/date=YYYY-MM-DD/<first>_<last>_<writer>.parquet   (the API's batches)
    monitoring/<model>/<kind>/date=YYYY-MM-DD/c<first>_<last>_<writer>.parquet  (compacted: many batches)
    monitoring/<model>/<kind>/YYYY-MM-DD/<first>_<last>_<writer>.jsonl.gz       (before Parquet: still read)
    monitoring/<model>/images/<YYYY-MM-DD>/<request id>.<png|jpg>   (only when image sampling is on)

`kind` is `predictions` or `feedback`; `first` and `last` are the times of the batch's first and last
record (sortable stamps), so a time window is answered by listing a few day folders and reading only
the batches that overlap it. Each object is written create-only in one call (an atomic rename locally,
one upload on GCS): no shared file, no read-modify-write, and a writer that dies mid-write leaves
nothing a reader sees. The columns are flat (one per input statistic) so the same SQL runs on DuckDB
and BigQuery (monitoring/sql/).

Compaction (`mlops monitor compact`) merges a closed day's small batches into large objects: a query
engine pays per object, and the API writes one every few seconds per worker. A compacted object lists
its sources in its Parquet metadata; readers skip sources a compacted object covers, so a compaction
that stops between writing and deleting counts nothing twice, and a rerun deletes the leftovers.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.image_stats import HIST_BINS
from registry.errors import RegistryError
from registry.store import Store

KINDS = ("predictions", "feedback")
AREA = "monitoring"
TRAFFIC_CLASSES = ("production", "smoke", "test", "canary")
DEFAULT_TRAFFIC_CLASS = "production"
_STAMP = "%Y%m%dT%H%M%S.%fZ"
_SOURCES = b"mlops.sources"  # Parquet key-value metadata of a compacted object: the batches it holds
HIST_COLUMNS = tuple(f"input_hist_{i}" for i in range(HIST_BINS))

SCHEMAS = {
    "predictions": pa.schema(
        [
            ("id", pa.string()),
            ("t", pa.float64()),
            ("at", pa.string()),
            ("model", pa.string()),
            ("version", pa.string()),
            ("endpoint", pa.string()),
            ("traffic_class", pa.string()),
            ("label", pa.string()),
            ("confidence", pa.float64()),
            ("probabilities", pa.map_(pa.string(), pa.float64())),
            ("deferred", pa.bool_()),  # null: logged before deferral (or by a version without one)
            ("input_format", pa.string()),
            ("input_width", pa.int64()),
            ("input_height", pa.int64()),
            ("input_mean", pa.float64()),
            ("input_std", pa.float64()),
            *[(name, pa.float64()) for name in HIST_COLUMNS],
            ("latency_ms", pa.float64()),
            ("image", pa.string()),
        ]
    ),
    "feedback": pa.schema(
        [
            ("id", pa.string()),
            ("t", pa.float64()),
            ("at", pa.string()),
            ("model", pa.string()),
            ("label", pa.string()),
        ]
    ),
}


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime(_STAMP)


def _parse_stamp(text: str) -> float:
    return datetime.strptime(text, _STAMP).replace(tzinfo=UTC).timestamp()


def _day(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


def kind_prefix(model: str, kind: str) -> str:
    """The folder of one kind of batch for one model."""
    if kind not in KINDS:
        raise RegistryError(f"unknown monitoring kind {kind!r}; use one of {', '.join(KINDS)}")
    return f"{AREA}/{model}/{kind}/"


def _number(value: Any) -> Any:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _row(record: dict[str, Any], kind: str) -> dict[str, Any]:
    """One record as the API builds it (nested input statistics) → one flat row of SCHEMAS[kind]."""
    if kind == "feedback":
        return {name: record.get(name) for name in SCHEMAS["feedback"].names}
    item = record.get("input") or {}
    hist = item.get("hist")
    hist = hist if isinstance(hist, list) and len(hist) == HIST_BINS else [None] * HIST_BINS
    probabilities = record.get("probabilities")
    version = record.get("version")
    return {
        "id": record.get("id"),
        "t": record.get("t"),
        "at": record.get("at"),
        "model": record.get("model"),
        "version": None if version is None else str(version),
        "endpoint": record.get("endpoint"),
        "traffic_class": record.get("traffic_class") or DEFAULT_TRAFFIC_CLASS,
        "label": None if record.get("label") is None else str(record.get("label")),
        "confidence": _number(record.get("confidence")),
        "probabilities": list(probabilities.items()) if isinstance(probabilities, dict) else None,
        "deferred": record.get("deferred") if isinstance(record.get("deferred"), bool) else None,
        "input_format": item.get("format"),
        "input_width": item.get("width") if isinstance(item.get("width"), int) else None,
        "input_height": item.get("height") if isinstance(item.get("height"), int) else None,
        "input_mean": _number(item.get("mean")),
        "input_std": _number(item.get("std")),
        **{name: _number(v) for name, v in zip(HIST_COLUMNS, hist, strict=True)},
        "latency_ms": _number(record.get("latency_ms")),
        "image": record.get("image"),
    }


def records_table(records: Sequence[dict[str, Any]], kind: str) -> pa.Table:
    """Records (as the API writes them) as an Arrow table of SCHEMAS[kind]."""
    return pa.Table.from_pylist([_row(r, kind) for r in records], schema=SCHEMAS[kind])


def table_records(table: pa.Table, kind: str) -> list[dict[str, Any]]:
    """The inverse of records_table: rows back to the API's record shape."""
    rows: list[dict[str, Any]] = table.to_pylist()  # pyarrow ships no types
    if kind == "feedback":
        return rows
    out = []
    for row in rows:
        hist = [row.pop(name) for name in HIST_COLUMNS]
        item = {k: row.pop(f"input_{k}") for k in ("format", "width", "height", "mean", "std")}
        item["hist"] = None if any(v is None for v in hist) else hist
        probabilities = row.get("probabilities")
        row["probabilities"] = None if probabilities is None else dict(probabilities)
        version = row.get(
            "version"
        )  # a string column (a plain model file has none); registry versions are ints
        row["version"] = int(version) if isinstance(version, str) and version.isdigit() else version
        if row.get("image") is None:
            row.pop("image", None)  # only sampled inputs name an image object
        out.append({**row, "input": item})
    return out


def encode_batch(records: Sequence[dict[str, Any]], kind: str = "predictions") -> bytes:
    """Records as one Parquet object (zstd; one row group: a batch is small)."""
    buffer = io.BytesIO()
    pq.write_table(records_table(records, kind), buffer, compression="zstd")
    return buffer.getvalue()


def conform(table: pa.Table, kind: str) -> pa.Table:
    """TABLE with exactly SCHEMAS[kind]'s columns (missing ones null; traffic class 'production')."""
    schema = SCHEMAS[kind]
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        elif field.name == "traffic_class":  # logged before traffic classes: all of it was production's
            columns.append(pa.array([DEFAULT_TRAFFIC_CLASS] * table.num_rows, pa.string()))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _legacy_records(data: bytes) -> list[dict[str, Any]]:
    text = gzip.decompress(data).decode()
    # One parse of the whole batch as a JSON array: 15% faster than a json.loads per line.
    lines = [line for line in text.splitlines() if line]
    records: list[dict[str, Any]] = json.loads("[" + ",".join(lines) + "]")  # checked just below
    if len(records) != len(lines) or not all(isinstance(r, dict) for r in records):
        raise ValueError("a line is not one JSON object")
    return records


def batch_table(data: bytes, key: str, kind: str) -> pa.Table:
    """The rows of one batch object (Parquet, or the JSON lines of before), as SCHEMAS[kind]."""
    try:
        if key.endswith(".jsonl.gz"):
            return records_table(_legacy_records(data), kind)
        return conform(pq.read_table(io.BytesIO(data)), kind)
    except (OSError, EOFError, ValueError, UnicodeDecodeError, pa.ArrowException) as exc:
        raise RegistryError(f"monitoring batch {key} is damaged ({exc})") from None


def decode_batch(data: bytes, what: str = "batch", kind: str = "predictions") -> list[dict[str, Any]]:
    """The records of one batch object, in the API's record shape."""
    return table_records(batch_table(data, what, kind), kind)


def write_batch(store: Store, model: str, kind: str, records: Sequence[dict[str, Any]]) -> str:
    """Write one batch (records carry "t", epoch seconds) as a new Parquet object; return its key."""
    if not records:
        raise ValueError("an empty batch")
    prefix = kind_prefix(model, kind)
    times = [float(r["t"]) for r in records]
    first, last = min(times), max(times)
    writer = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    key = f"{prefix}date={_day(first)}/{_stamp(first)}_{_stamp(last)}_{writer}.parquet"
    store.write(key, encode_batch(records, kind), create_only=True)
    return key


def image_key(model: str, request_id: str, fmt: str | None, t: float) -> str:
    """Where a sampled input image is kept."""
    ext = {"PNG": "png", "JPEG": "jpg"}.get(fmt or "", "bin")
    return f"{AREA}/{model}/images/{_day(t)}/{request_id}.{ext}"


def batch_span(key: str) -> tuple[float, float] | None:
    """(first, last) record times a batch key names, or None for a key that is not a batch."""
    name = key.rsplit("/", 1)[-1]
    if name.endswith(".parquet"):
        name = name.removeprefix("c")
    elif not name.endswith(".jsonl.gz"):
        return None
    parts = name.split("_")
    if len(parts) != 3:
        return None
    try:
        return _parse_stamp(parts[0]), _parse_stamp(parts[1])
    except ValueError:
        return None


def is_compacted(key: str) -> bool:
    """Whether KEY names a compacted object (many batches in one)."""
    return key.rsplit("/", 1)[-1].startswith("c") and key.endswith(".parquet")


def _day_folders(prefix: str, day: str) -> list[str]:
    return [f"{prefix}date={day}/", f"{prefix}{day}/"]  # Parquet, then the JSON lines of before


def _listed(store: Store, model: str, kind: str, since: float, until: float) -> list[str]:
    prefix = kind_prefix(model, kind)
    # A batch lives in its first record's day folder: one begun before midnight may reach into the window.
    day = datetime.fromtimestamp(since, UTC).date() - timedelta(days=1)
    end = datetime.fromtimestamp(until, UTC).date()
    if (end - day).days > 31:
        return store.list(prefix)  # one listing beats a call per day for long windows
    listed: list[str] = []
    while day <= end:
        for folder in _day_folders(prefix, day.isoformat()):
            listed += store.list(folder)
        day += timedelta(days=1)
    return listed


def local_path(store: Store, key: str) -> Path | None:
    """The file behind KEY when STORE is a local folder (query engines read it in place), else None."""
    from registry.local_store import LocalStore

    return store.root / key if isinstance(store, LocalStore) else None


def compacted_sources(store: Store, key: str, data: bytes | None = None) -> list[str]:
    """The batch keys a compacted object holds (from its Parquet metadata)."""
    path = local_path(store, key)
    try:
        if path is not None and data is None:
            metadata = pq.read_schema(path).metadata or {}
        else:
            data = store.read(key) if data is None else data
            metadata = pq.read_schema(io.BytesIO(data or b"")).metadata or {}
        return [str(k) for k in json.loads(metadata.get(_SOURCES, b"[]"))]
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise RegistryError(f"monitoring batch {key} is damaged ({exc})") from None


@dataclass
class Listing:
    """The batches of a window, and the damaged objects left out (named, never deleted)."""

    keys: list[str]
    damaged: list[str]


def list_batches(store: Store, model: str, kind: str, since: float, until: float) -> Listing:
    """Batches holding records in [since, until), oldest first, without those a compacted object covers."""
    spans = {key: batch_span(key) for key in _listed(store, model, kind, since, until)}
    keys = [k for k, span in spans.items() if span is not None and span[0] < until and span[1] >= since]
    covered: set[str] = set()
    damaged: list[str] = []
    for key in [k for k in keys if is_compacted(k)]:
        try:
            covered.update(compacted_sources(store, key))
        except RegistryError:
            damaged.append(key)
    keys = [k for k in keys if k not in covered and k not in damaged]
    return Listing(sorted(keys, key=lambda k: spans[k] or (0.0, 0.0)), damaged)


def batch_keys(store: Store, model: str, kind: str, since: float, until: float) -> list[str]:
    """Keys of the batches holding records in [since, until), oldest first."""
    return list_batches(store, model, kind, since, until).keys


def read_records(store: Store, model: str, kind: str, since: float, until: float) -> Iterator[dict[str, Any]]:
    """Every record of KIND with since <= t < until, batch by batch (for tests and small windows;
    `mlops monitor` queries the same objects through DuckDB)."""
    listing = list_batches(store, model, kind, since, until)
    if listing.damaged:
        raise RegistryError(f"monitoring batch {listing.damaged[0]} is damaged; move it aside")
    chunk = 64
    for start in range(0, len(listing.keys), chunk):
        part = listing.keys[start : start + chunk]
        for key, data in zip(part, store.read_many(part), strict=True):
            if data is None:
                continue
            for record in decode_batch(data, key, kind):
                if since <= float(record.get("t") or -1) < until:
                    yield record


@dataclass
class Compaction:
    """What one compaction did."""

    written: list[str]
    removed: int
    rows: int
    damaged: list[str]


def compact(store: Store, model: str, kind: str, day: str, max_rows: int = 2_000_000) -> Compaction:
    """Merge DAY's batches (Parquet and JSON lines) into compacted Parquet objects, then remove them.

    Damaged batches are left where they are and named. A source is removed only after the compacted
    object holding it is stored, so a crash anywhere loses nothing (readers skip covered sources).
    """
    prefix = kind_prefix(model, kind)
    listed = [k for folder in _day_folders(prefix, day) for k in store.list(folder) if batch_span(k)]
    covered: set[str] = set()
    damaged: list[str] = []
    for key in [k for k in listed if is_compacted(k)]:
        try:
            covered.update(compacted_sources(store, key))
        except RegistryError:
            damaged.append(key)
    leftovers = [k for k in listed if k in covered]
    todo = sorted(k for k in listed if not is_compacted(k) and k not in covered)
    written: list[str] = []
    rows = removed = 0
    with tempfile.TemporaryDirectory(prefix="mlops-compact-") as tmp:
        part: list[tuple[str, pa.Table]] = []

        def flush() -> None:
            nonlocal rows, removed
            if not part:
                return
            table = pa.concat_tables([t for _, t in part]).sort_by("t")
            times = table.column("t")
            first, last = pc.min(times).as_py(), pc.max(times).as_py()
            sources = json.dumps([k for k, _ in part]).encode()
            table = table.replace_schema_metadata({_SOURCES: sources})
            path = Path(tmp) / "compacted.parquet"
            pq.write_table(table, path, compression="zstd", row_group_size=256 * 1024)
            writer = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
            key = f"{prefix}date={day}/c{_stamp(first)}_{_stamp(last)}_{writer}.parquet"
            store.put_file(key, path)
            written.append(key)
            rows += table.num_rows
            for source, _ in part:
                store.delete(source)
            removed += len(part)
            part.clear()

        count = 0
        for start in range(0, len(todo), 64):
            keys = todo[start : start + 64]
            for key, data in zip(keys, store.read_many(keys), strict=True):
                if data is None:
                    continue
                try:
                    table = batch_table(data, key, kind)
                except RegistryError:
                    damaged.append(key)
                    continue
                part.append((key, table))
                count += table.num_rows
                if count >= max_rows:
                    flush()
                    count = 0
        if len(part) > 1 or any(k.endswith(".jsonl.gz") for k, _ in part):
            flush()
    for key in leftovers:  # a compaction that stopped before its deletes
        store.delete(key)
    return Compaction(written, removed + len(leftovers), rows, damaged)


def days(store: Store, model: str, kind: str) -> list[str]:
    """The day folders of KIND (both layouts), oldest first."""
    found = set()
    for name in store.children(kind_prefix(model, kind)):
        day = name.removeprefix("date=")
        try:
            datetime.strptime(day, "%Y-%m-%d")
        except ValueError:
            continue
        found.add(day)
    return sorted(found)
