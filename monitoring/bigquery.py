"""`mlops monitor --engine bigquery`: the same window queries on BigQuery external tables over the bucket.

Prints the external-table definitions (monitoring/sql/bigquery_tables.sql, hive partitioning on
date=YYYY-MM-DD) and each window query with its parameters, ready for `bq query
--use_legacy_sql=false --dataset_id=DATASET --parameter=...`. Where google-cloud-bigquery is installed
and application-default credentials exist, `run` executes them; neither exists on the CI agents here.
JSON-lines batches from before Parquet break a PARQUET external table: `mlops monitor compact` first.
"""

from __future__ import annotations

import re
from typing import Any

from core.errors import MlopsError
from monitoring.query import sql_text

QUERIES = ("window_counts", "window_numeric", "window_shares", "window_labelled", "window_deferrals")
_DATASET = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
_TYPES = {float: "FLOAT64", str: "STRING", int: "INT64"}


def _bq_type(name: str, value: Any) -> str:
    return "DATE" if name.endswith("_day") else _TYPES[type(value)]


def table_definitions(root: str, model: str, dataset: str) -> str:
    """The CREATE EXTERNAL TABLE statements for a gs:// registry ROOT."""
    if not root.startswith("gs://"):
        raise MlopsError(f"BigQuery reads the monitoring log from GCS; the store is {root}, not gs://BUCKET")
    if not _DATASET.match(dataset):
        raise MlopsError(f"BigQuery dataset {dataset!r} is not a dataset name (letters, digits, _)")
    text = sql_text("bigquery_tables")
    return text.replace("@dataset", dataset).replace("@root", root.rstrip("/")).replace("@model", model)


def printable(root: str, model: str, dataset: str, parameters: dict[str, Any]) -> str:
    """Tables, then each query with the `bq query` flags that bind its parameters."""
    out = [table_definitions(root, model, dataset)]
    for name in QUERIES:
        text = sql_text(name)
        used = sorted(set(re.findall(r"@([a-z_]+)", text)))
        flags = " ".join(f"--parameter='{k}:{_bq_type(k, parameters[k])}:{parameters[k]}'" for k in used)
        out.append(f"-- {name}: bq query --use_legacy_sql=false --dataset_id={dataset} {flags}\n{text}")
    return "\n".join(out)


def run(dataset: str, parameters: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Run the window queries on BigQuery (needs google-cloud-bigquery and credentials)."""
    try:
        from google.cloud import bigquery  # not a dependency: only where BigQuery is used
    except ModuleNotFoundError:
        raise MlopsError(
            "google-cloud-bigquery is not installed: pip install google-cloud-bigquery"
        ) from None
    client = bigquery.Client()
    results = {}
    for name in QUERIES:
        text = sql_text(name)
        config = bigquery.QueryJobConfig(
            default_dataset=f"{client.project}.{dataset}",
            query_parameters=[
                bigquery.ScalarQueryParameter(k, _bq_type(k, v), v)
                for k, v in parameters.items()
                if f"@{k}" in text
            ],
        )
        results[name] = [dict(row) for row in client.query(text, job_config=config).result()]
    return results
