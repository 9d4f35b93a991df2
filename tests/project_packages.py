"""The top-level packages pyproject.toml installs (its packages.find include), for tests that walk them."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def project_packages() -> list[str]:
    """Every top-level package pyproject installs ("core*" -> core), so a new one cannot be missed."""
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    names = sorted({pattern.rstrip("*").split(".")[0] for pattern in find["include"]})
    missing = [name for name in names if not (ROOT / name / "__init__.py").is_file()]
    assert not missing, f"pyproject.toml includes packages that are not there: {missing}"
    return names
