"""A demo home for benchmarks that need a real registry: the `mlops` CLI run in it, and the setup
bench_gate.py and bench_robustness.py share (production v1 with its reference set, a push)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mlops(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`mlops ARGS` with MLOPS_HOME=HOME, output captured."""
    env = {**os.environ, "MLOPS_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [str(Path(sys.executable).with_name("mlops")), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)


def must(result: subprocess.CompletedProcess[str], what: str) -> str:
    """RESULT's stdout, or exit naming WHAT and the end of its stderr."""
    if result.returncode != 0:
        raise SystemExit(f"{what} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


def production_with_push(home: Path) -> Path:
    """`pipeline code --approve-as product-owner` (demo data, reference set 1, production v1), then
    `demo-data --batch 2` (a push); the pushed data folder."""
    must(mlops(home, "pipeline", "code", "--approve-as", "product-owner"), "pipeline code")
    must(mlops(home, "demo-data", "--batch", "2"), "demo-data --batch 2")
    return home / "data" / "demo"
