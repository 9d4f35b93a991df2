-- BigQuery external tables over the bucket's monitoring/ area (hive partitioning on date=YYYY-MM-DD).
-- `mlops monitor --engine bigquery` prints this with the bucket, prefix and dataset filled in.
CREATE OR REPLACE EXTERNAL TABLE `@dataset.predictions`
WITH PARTITION COLUMNS (date DATE)
OPTIONS (
  format = 'PARQUET',
  uris = ['@root/monitoring/@model/predictions/*'],
  hive_partition_uri_prefix = '@root/monitoring/@model/predictions',
  require_hive_partition_filter = false,
  enable_list_inference = true
);
CREATE OR REPLACE EXTERNAL TABLE `@dataset.feedback`
WITH PARTITION COLUMNS (date DATE)
OPTIONS (
  format = 'PARQUET',
  uris = ['@root/monitoring/@model/feedback/*'],
  hive_partition_uri_prefix = '@root/monitoring/@model/feedback',
  require_hive_partition_filter = false
);
