"""`mlops serve` and model loading through the registry."""

from __future__ import annotations

import json
import os
import runpy
import shutil
from pathlib import Path

from api_testlib import CLASSES, image_bytes
from manifests import lineage

from model_api.cli import gunicorn_command


def test_serve_with_a_missing_model_fails_fast_with_one_line(cli, tmp_path):
    result = cli("serve", "--model", str(tmp_path / "missing.keras"), "--port", "0")
    assert result.code == 2  # a ref naming nothing is a usage error (registry.refs)
    assert "missing.keras" in result.err and "no such model file" in result.err
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1


def test_serve_with_an_empty_registry_says_so(cli):
    result = cli("serve", "--model", "production:current")
    assert result.code == 1
    assert "registry" in result.err and "does not exist" in result.err


def test_serve_rejects_nonpositive_workers(cli, model_dir):
    result = cli("serve", "--model", str(model_dir / "model.keras"), "--workers", "0")
    assert result.code == 2 and "--workers" in result.err


def test_serve_refuses_a_grpc_port_it_cannot_have(cli, model_dir):
    model = str(model_dir / "model.keras")
    clash = cli("serve", "--model", model, "--port", "9123", "--grpc-port", "9123")
    assert clash.code == 2 and "--grpc-port 9123 is the REST port" in clash.err
    out_of_range = cli("serve", "--model", model, "--grpc-port", "70000")
    assert out_of_range.code == 2 and "--grpc-port" in out_of_range.err


def test_model_file_without_manifest_is_refused(cli, model_dir, tmp_path):
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shutil.copy(model_dir / "model.keras", lonely / "model.keras")
    result = cli("serve", "--model", str(lonely / "model.keras"))
    assert result.code == 1 and "manifest" in result.err


def test_gunicorn_runs_the_factory_with_the_config_module_and_no_preload(monkeypatch):
    """The config as gunicorn executes it: no preload, and a metrics folder of its own, removed on exit."""
    command = gunicorn_command()
    assert command[-1] == "model_api:create_app()"
    config = Path(command[command.index("--config") + 1])
    monkeypatch.setenv("MLOPS_API_WORKERS", "3")
    # Set, then deleted: monkeypatch then removes whatever the config sets when the test ends.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "unset")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    values = runpy.run_path(str(config))
    assert values["preload_app"] is False and values["workers"] == 3
    metrics_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    assert metrics_dir.is_dir()
    values["on_exit"](None)
    assert not metrics_dir.exists()


def test_app_serves_a_registered_version_by_ref(model_dir, settings):
    """testing:latest is fetched from the registry, verified, and served with its registry version."""
    from model_api import create_app
    from registry import open_registry

    manifest = json.loads((model_dir / "manifest.json").read_text())
    source = Path("src")
    source.mkdir()
    shutil.copy(model_dir / "model.keras", source / "model.keras")
    registered = open_registry(settings).register(source, lineage(**manifest), actor="test")
    app = create_app({"MODEL_REF": "testing:latest"})
    client = app.test_client()
    assert client.get("/readyz").json["model"]["version"] == registered.version
    body = client.post("/predict", data=image_bytes(), content_type="image/png").json
    assert list(body["probabilities"]) == CLASSES
    assert body["model"]["version"] == registered.version


def test_config_layers_env_then_test_mapping(bundle, monkeypatch):
    from model_api import create_app

    monkeypatch.setenv("MLOPS_API_MAX_BATCH", "3")
    monkeypatch.setenv("MLOPS_API_MAX_IMAGE_PIXELS", "1000")
    app = create_app({"MODEL_BUNDLE": bundle, "MAX_IMAGE_PIXELS": 5000})
    assert app.config["MAX_BATCH"] == 3  # environment beats the code default
    assert app.config["MAX_IMAGE_PIXELS"] == 5000  # the test mapping beats the environment
    assert app.config["MAX_CONTENT_LENGTH"] == 10 * 1024 * 1024


def test_importing_the_package_loads_no_tensorflow_and_no_model():
    import subprocess
    import sys

    code = "import sys, model_api, model_api.app, model_api.cli;print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
