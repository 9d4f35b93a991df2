"""The `mlops` command line, the three pipelines and notifications: the top floor."""
