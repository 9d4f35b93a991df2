"""The window queries of `mlops monitor` (monitoring/sql/*.sql), run by DuckDB over Parquet batches.

The SQL files are written once, in the dialect DuckDB and BigQuery share (`@name` parameters, QUALIFY,
no engine-specific functions), so the same text runs on BigQuery external tables over the bucket
(`mlops monitor --engine bigquery` prints it). Locally DuckDB reads a file:// store's Parquet objects in
place (only the batches whose names overlap the window). A gs:// store's objects are read through the
registry store (its credentials, its concurrency) into Arrow tables DuckDB queries in memory: DuckDB's
own gs:// reader (the httpfs extension) is downloaded at first use, which a locked-down CI agent cannot.
JSON-lines batches of before are converted to Arrow on the way in (`mlops monitor compact` rewrites them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import pyarrow as pa

from registry.errors import RegistryError
from registry.monitoring_log import SCHEMAS, batch_table, list_batches, local_path
from registry.store import Store

_PARAM = re.compile(r"@([a-z_]+)")


def sql_text(name: str) -> str:
    """One query file of monitoring/sql/."""
    return resources.files("monitoring").joinpath("sql", f"{name}.sql").read_text()


def _day(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


def window_parameters(
    since: float, until: float, now: float, version: str, traffic_class: str
) -> dict[str, Any]:
    """The queries' parameters for one window (a batch lives in its first record's day: one day before)."""
    first = (datetime.fromtimestamp(since, UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    return {
        "first_day": first,
        "last_day": _day(until),
        "feedback_last_day": _day(now),
        "since": since,
        "until": until,
        "now": now,
        "version": version,
        "traffic_class": traffic_class,
    }


@dataclass
class Tables:
    """A DuckDB connection with `predictions` and `feedback` views over one window's batches."""

    connection: Any
    damaged: list[str] = field(default_factory=list)  # objects left out (named in the summary)
    batches: dict[str, int] = field(default_factory=dict)  # objects read per kind

    def run(self, name: str, parameters: dict[str, Any]) -> list[tuple]:
        """Run monitoring/sql/NAME.sql with PARAMETERS (only those the query names)."""
        text = sql_text(name)
        wanted = set(_PARAM.findall(text))
        return self.connection.execute(
            _PARAM.sub(r"$\1", text), {k: v for k, v in parameters.items() if k in wanted}
        ).fetchall()


def _readable(path: str) -> bool:
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
        return True
    except (OSError, pa.ArrowException):
        return False


def _view(connection: Any, store: Store, model: str, kind: str, since: float, until: float, tables: Tables):
    """Create view KIND over the batches of [since, until): local Parquet in place, the rest via Arrow."""
    listing = list_batches(store, model, kind, since, until)
    tables.damaged += listing.damaged
    tables.batches[kind] = len(listing.keys)
    files: list[str] = []
    remote: list[str] = []
    for key in listing.keys:
        path = local_path(store, key)
        if path is not None and key.endswith(".parquet"):
            files.append(str(path))
        else:
            remote.append(key)
    arrow = [SCHEMAS[kind].empty_table()]
    for start in range(0, len(remote), 64):
        keys = remote[start : start + 64]
        for key, data in zip(keys, store.read_many(keys), strict=True):
            if data is None:
                continue  # removed since the listing (compacted): its rows are in the compacted object
            try:
                table = batch_table(data, key, kind)
            except RegistryError:
                tables.damaged.append(key)
                continue
            day = key.split("/")[-2].removeprefix("date=")  # both layouts: date=YYYY-MM-DD or YYYY-MM-DD
            arrow.append(table.append_column("date", pa.array([day] * len(table), pa.string())))
    memory = pa.concat_tables([arrow[0].append_column("date", pa.array([], pa.string())), *arrow[1:]])
    connection.register(f"{kind}_arrow", memory)
    parts = [f"SELECT * REPLACE (CAST(date AS DATE) AS date) FROM {kind}_arrow"]
    if files:
        bad = [f for f in files if not _readable(f)] if not _scan_ok(connection, files) else []
        tables.damaged += [_key(f, store) for f in bad]
        files = [f for f in files if f not in bad]
    if files:
        # The schema's columns the files have: a column added later (deferred) is absent from older
        # batches, and UNION ALL BY NAME with the Arrow part (every column) fills it with NULL.
        columns = ", ".join(f"'{name}'" for name in SCHEMAS[kind].names)
        parts.append(
            f"SELECT COLUMNS(c -> list_contains([{columns}], c)), CAST(date AS DATE) AS date "
            "FROM read_parquet("
            f"[{_values(files)}], hive_partitioning = true, union_by_name = true)"
        )
    connection.execute(f"CREATE VIEW {kind} AS " + " UNION ALL BY NAME ".join(parts))


def _key(path: str, store: Store) -> str:
    root = str(getattr(store, "root", ""))
    return path[len(root) + 1 :] if root and path.startswith(root) else path


def _values(files: list[str]) -> str:
    return ", ".join("'" + f.replace("'", "''") + "'" for f in files)  # paths this process listed


def _scan_ok(connection: Any, files: list[str]) -> bool:
    """Whether DuckDB reads every file's footer (a damaged object fails the whole scan: find it then)."""
    import duckdb

    try:
        connection.execute("SELECT count(*) FROM parquet_metadata(?)", [files]).fetchall()
        return True
    except duckdb.Error:
        return False


def open_window(store: Store, model: str, since: float, until: float, now: float) -> Tables:
    """DuckDB views over MODEL's predictions in [since, until) and feedback in [since, now)."""
    import duckdb

    connection = duckdb.connect()
    tables = Tables(connection)
    _view(connection, store, model, "predictions", since, until, tables)
    _view(connection, store, model, "feedback", since, now, tables)
    return tables
