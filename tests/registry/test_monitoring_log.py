"""The store's monitoring/ area: one immutable object per batch, windows by name, on both store kinds."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest

from registry import RegistryError
from registry.monitoring_log import batch_keys, batch_span, read_records, write_batch
from registry.store import ObjectExists

DAY = 86400.0
MIDNIGHT = datetime(2025, 3, 1, tzinfo=UTC).timestamp()


def batch(start: float, n: int, step: float = 1.0, tag: str = "r") -> list[dict]:
    return [{"id": f"{tag}{i}", "t": start + i * step, "label": "normal"} for i in range(n)]


def test_a_batch_is_one_parquet_object_in_a_hive_partition_named_by_its_time_span(reg):
    key = write_batch(reg.store, "xray", "predictions", batch(MIDNIGHT + 3600, 3))
    assert key.startswith(
        "monitoring/xray/predictions/date=2025-03-01/20250301T010000.000000Z_20250301T010002.000000Z_"
    )
    assert key.endswith(".parquet")
    assert batch_span(key) == (MIDNIGHT + 3600, MIDNIGHT + 3602)
    table = pq.read_table(io.BytesIO(reg.store.read(key)))
    assert table.column("id").to_pylist() == ["r0", "r1", "r2"]
    assert table.column("traffic_class").to_pylist() == ["production"] * 3  # the default
    assert reg.store.list("monitoring/") == [key]


def test_json_lines_batches_of_before_stay_readable(reg):
    """A store written before Parquet: its gzip'd JSON-lines batches are read beside the new ones."""
    old = batch(MIDNIGHT + 10, 2, tag="old")
    lines = "".join(json.dumps(r) + "\n" for r in old).encode()
    name = "20250301T000010.000000Z_20250301T000011.000000Z_1-abc.jsonl.gz"
    reg.store.write(f"monitoring/xray/predictions/2025-03-01/{name}", gzip.compress(lines))
    write_batch(reg.store, "xray", "predictions", batch(MIDNIGHT + 20, 2, tag="new"))
    found = list(read_records(reg.store, "xray", "predictions", MIDNIGHT, MIDNIGHT + 60))
    assert [r["id"] for r in found] == ["old0", "old1", "new0", "new1"]
    assert {r["traffic_class"] for r in found} == {"production"}


def test_records_are_read_by_window_across_days_and_batches(reg):
    write_batch(reg.store, "xray", "predictions", batch(MIDNIGHT - 5, 10, tag="a"))  # spans midnight
    write_batch(reg.store, "xray", "predictions", batch(MIDNIGHT + DAY, 5, tag="b"))  # the next day
    write_batch(reg.store, "xray", "feedback", batch(MIDNIGHT, 5, tag="f"))
    write_batch(reg.store, "other-model", "predictions", batch(MIDNIGHT, 5, tag="o"))

    def ids(since: float, until: float) -> list[str]:
        return [r["id"] for r in read_records(reg.store, "xray", "predictions", since, until)]

    assert ids(MIDNIGHT, MIDNIGHT + 2 * DAY) == ["a5", "a6", "a7", "a8", "a9", "b0", "b1", "b2", "b3", "b4"]
    assert ids(MIDNIGHT - 10, MIDNIGHT) == ["a0", "a1", "a2", "a3", "a4"]  # until is exclusive
    assert ids(MIDNIGHT + DAY + 2, MIDNIGHT + DAY + 3) == ["b2"]
    assert ids(MIDNIGHT + 3600, MIDNIGHT + 7200) == []
    # A window far from any batch reads nothing; a long one lists the whole kind once.
    assert len(batch_keys(reg.store, "xray", "predictions", MIDNIGHT + 3600, MIDNIGHT + 7200)) == 0
    assert len(ids(0, MIDNIGHT + 10 * DAY)) == 15
    feedback = read_records(reg.store, "xray", "feedback", 0, MIDNIGHT + DAY)
    assert [r["id"] for r in feedback] == ["f0", "f1", "f2", "f3", "f4"]


def test_batches_are_create_only_and_a_damaged_one_is_named(reg):
    key = write_batch(reg.store, "xray", "predictions", batch(MIDNIGHT, 2))
    with pytest.raises(ObjectExists):
        reg.store.write(key, b"other", create_only=True)
    reg.store.write(key.replace(".parquet", "x.parquet"), b"not parquet")  # a stray object, same span
    with pytest.raises(RegistryError, match="damaged"):
        list(read_records(reg.store, "xray", "predictions", 0, MIDNIGHT + 10))


def test_unknown_kinds_and_empty_batches_are_refused(reg):
    with pytest.raises(RegistryError, match="unknown monitoring kind"):
        write_batch(reg.store, "xray", "images", batch(MIDNIGHT, 1))
    with pytest.raises(ValueError):
        write_batch(reg.store, "xray", "predictions", [])
