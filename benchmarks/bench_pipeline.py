"""Pipeline runner benchmark: a stage run in-process (as `mlops pipeline` does) vs a `mlops` subprocess.

    .venv/bin/python benchmarks/bench_pipeline.py [--quick]

`mlops pipeline` calls each verb through `mlops.cli.main` in one process instead of starting
`mlops ...` per stage the way a shell script (or the Jenkinsfile's sh steps) does. This measures
what that saves per stage on the cheap verbs that dominate short pipelines (registry show /
list on a small local registry with one registered version): the baseline is the subprocess,
measured in the same run. Goal: in-process at least 5x faster per stage.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MLOPS = str(Path(sys.executable).parent / "mlops")


def make_registry(home: Path) -> None:
    """A local registry with one tiny registered version (no TensorFlow needed)."""
    from core.settings import load_settings
    from registry import open_registry

    src = home / "candidate"
    src.mkdir(parents=True)
    (src / "model.keras").write_bytes(os.urandom(64 * 1024))
    settings = load_settings(env={"MLOPS_HOME": str(home)})
    from bench_registry import MANIFEST  # a registrable manifest: the lineage without training

    manifest = {**MANIFEST, "classes": ["a", "b"]}
    open_registry(settings).register(src, manifest, actor="bench", reason="benchmark")


def time_in_process(argv: list[str], runs: int) -> list[float]:
    from mlops.pipeline import PipelineRun, Stage

    times = []
    for _ in range(runs):
        run = PipelineRun(out=io.StringIO())
        start = time.perf_counter()
        run.run(Stage("bench", tuple(argv), capture_json=True))
        times.append(time.perf_counter() - start)
    return times


def time_subprocess(argv: list[str], runs: int, env: dict[str, str]) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([MLOPS, *argv], env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    args = parser.parse_args()
    runs = 3 if args.quick else 10
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / ".mlops"
        os.environ["MLOPS_HOME"] = str(home)
        env = {**os.environ}
        make_registry(home)
        rows = []
        for argv in (["registry", "show", "testing:1", "--json"], ["registry", "list", "--json"]):
            sub = statistics.median(time_subprocess(argv, runs, env))
            inproc = statistics.median(time_in_process(argv, runs))
            rows.append((" ".join(argv), sub, inproc, sub / inproc))
    print(f"pipeline stage cost, median of {runs} runs (baseline: `mlops ...` subprocess, same run)")
    print(f"{'stage':<36} {'subprocess s':>13} {'in-process s':>13} {'speed-up':>9}")
    for name, sub, inproc, ratio in rows:
        print(f"{name:<36} {sub:>13.3f} {inproc:>13.4f} {ratio:>8.1f}x")
    worst = min(ratio for *_, ratio in rows)
    print(json.dumps({"min_speedup": round(worst, 1), "goal": 5.0, "met": worst >= 5.0}))
    return 0 if worst >= 5.0 else 1


if __name__ == "__main__":
    sys.exit(main())
