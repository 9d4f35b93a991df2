"""The real serving entry point (`mlops-serve`) with a fault injected into chosen versions: canary tests only.

Used as deploy.serve_command (`python tests/deploy/fault_serve.py --model REF ...`): it runs the
real entry point in this process with gunicorn's app factory pointed at `create_app` below, which
builds the real app (real model, routes, metrics) and, for a version named in MLOPS_FAULT_INJECT,
wraps the loaded model's predict function. gunicorn is still exec'd, so LISTEN_FDS reaches it.

    MLOPS_FAULT_INJECT="3=error:pneumonia,4=slow:0.4,5=collapse"

    error:CLASS   the model call raises for inputs it classifies as CLASS (/predict answers 500)
    flaky:RATE    the model call raises at random for a RATE share of calls (seeded: repeatable)
    slow:SECONDS  every model call waits SECONDS first
    collapse      every prediction is the first class, with probability 0.9
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

FAULTS_ENV = "MLOPS_FAULT_INJECT"


def fault_for(version: Any) -> str | None:
    """The fault MLOPS_FAULT_INJECT names for VERSION, None when it serves as it is."""
    for item in os.environ.get(FAULTS_ENV, "").split(","):
        listed, _, fault = item.strip().partition("=")
        if listed and listed == str(version):
            return fault
    return None


def inject(bundle: Any, fault: str) -> None:
    """Wrap the bundle's one model call (every predict path goes through it) with FAULT."""
    kind, _, arg = fault.partition(":")
    if kind not in ("error", "flaky", "slow", "collapse"):
        raise ValueError(f"{FAULTS_ENV}: unknown fault {fault!r}")
    original = bundle.predict_encoded_with_stats
    dice = random.Random(0)

    def faulty(images: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        if kind == "slow":
            time.sleep(float(arg))
        if kind == "flaky" and dice.random() < float(arg):
            raise RuntimeError(f"injected fault: the model fails on {float(arg):.0%} of calls")
        probabilities, stats = original(images)
        if kind == "error" and any(bundle.classes[int(np.argmax(row))] == arg for row in probabilities):
            raise RuntimeError(f"injected fault: the model fails on inputs it classifies as {arg}")
        if kind == "collapse":
            probabilities = np.full_like(probabilities, 0.1 / (probabilities.shape[1] - 1))
            probabilities[:, 0] = 0.9
        return probabilities, stats

    bundle.predict_encoded_with_stats = faulty


def create_app() -> Any:
    """The real app; its model wrapped with the fault its version is given, if any."""
    from model_api import create_app as real_create_app

    app = real_create_app()
    bundle = app.extensions["mlops_bundle"]
    fault = fault_for(bundle.version)
    if fault:
        inject(bundle, fault)
        app.logger.warning("FAULT INJECTION for version %s: %s", bundle.version, fault)
    return app


def main(argv: list[str]) -> int:
    """`mlops-serve ARGV...`, with this module as gunicorn's app."""
    import model_api.cli

    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    model_api.cli.APP = "fault_serve:create_app()"
    return model_api.cli.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
