"""The `mlops` command line, settings, pipelines and notifications."""

__version__ = "0.1.0"
