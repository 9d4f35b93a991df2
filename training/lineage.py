"""Lineage facts for the manifest: code version and framework versions."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, check=True, cwd=Path.cwd()
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def code_info(env: dict[str, str] | None = None) -> dict[str, str | None]:
    """{"commit", "repo", "build_url"}: Jenkins' GIT_COMMIT/GIT_URL/BUILD_URL, else git itself."""
    env = dict(os.environ) if env is None else env
    return {
        "commit": env.get("GIT_COMMIT") or _git("rev-parse", "HEAD"),
        "repo": env.get("GIT_URL") or _git("config", "--get", "remote.origin.url"),
        "build_url": env.get("BUILD_URL") or None,
    }


def frameworks() -> dict[str, str]:
    """Versions of what trained the model."""
    import keras
    import numpy
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
    }
