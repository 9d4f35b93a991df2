"""The serving entry point runs with no floor above model_api installed: what the serving image ships.

A `sitecustomize` on PYTHONPATH makes importing mlops/ (and training/, retraining/, unit_testing/,
deploy/) fail in the server and every process it execs or forks, as in the image. The model tests'
launcher (unit_testing.live_api, a lower floor than mlops/) starts the API through it and it answers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests
from api_testlib import CLASSES, image_bytes

from core.settings import load_settings

ABOVE_SERVING = ("mlops", "training", "retraining", "unit_testing", "deploy")

BLOCKER = f'''
import sys

ABOVE_SERVING = {ABOVE_SERVING!r}


class NotInTheServingImage:
    """Refuse the packages the serving image does not ship, before any other finder sees them."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ABOVE_SERVING:
            raise ModuleNotFoundError(f"{{name}} is not in the serving image", name=name)
        return None


sys.meta_path.insert(0, NotInTheServingImage())
'''


@pytest.fixture
def no_top_floor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """PYTHONPATH with the blocker for every child process; the environment it gives them."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    monkeypatch.setenv("PYTHONPATH", str(site))
    return {"PYTHONPATH": str(site)}


def test_the_blocker_refuses_the_top_floor_and_lets_serving_code_import(no_top_floor):
    """Negative control: the same environment really refuses `import mlops` and nothing serving needs."""
    refused = subprocess.run([sys.executable, "-c", "import mlops"], capture_output=True, text=True)
    assert refused.returncode != 0 and "mlops is not in the serving image" in refused.stderr
    allowed = subprocess.run(
        [sys.executable, "-c", "import core.settings, registry, model_api.cli, gunicorn"],
        capture_output=True,
        text=True,
    )
    assert allowed.returncode == 0, allowed.stderr


@pytest.mark.slow
def test_the_model_tests_start_the_api_without_the_top_floor(no_top_floor, model_dir, monkeypatch):
    from unit_testing.live_api import serve_candidate

    for name, value in {"WORKERS": "1", "THREADS": "2", "TF_THREADS": "1"}.items():
        monkeypatch.setenv(f"MLOPS_API_{name}", value)
    settings = load_settings()
    with serve_candidate(str(model_dir / "model.keras"), settings) as live:
        url = live.url
        ready = requests.get(f"{url}/readyz", timeout=30)
        assert ready.status_code == 200 and ready.json()["model"]["version"] == 7
        answer = requests.post(
            f"{url}/predict", data=image_bytes(seed=3), headers={"Content-Type": "image/png"}, timeout=60
        )
        assert answer.status_code == 200, answer.text
        assert list(answer.json()["probabilities"]) == CLASSES
