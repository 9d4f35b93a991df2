"""Fixtures for the API: a tiny saved Keras model, the app, its client, and real gunicorn."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_testlib import CLASSES, MODEL_NAME, Server, start_server, stop_server


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-class Keras model for [64, 64, 1] inputs, saved with its manifest.json."""
    import keras

    from model_api.bundle import configure_threads

    configure_threads(2)  # 2 cores shared by everyone
    keras.utils.set_random_seed(7)
    model = keras.Sequential(
        [
            keras.Input((64, 64, 1)),
            keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(len(CLASSES), activation="softmax"),
        ]
    )
    folder = tmp_path_factory.mktemp("model")
    model.save(folder / "model.keras")
    manifest = {
        "name": MODEL_NAME,
        "version": 7,
        "area": "testing",
        "model_file": "model.keras",
        "classes": CLASSES,
        "preprocessing": {"image_size": 64, "channels": 1},
        "metrics": {"accuracy": 0.9},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture(scope="session")
def bundle(model_dir: Path):
    """The test model loaded and warmed once for the whole session."""
    from model_api.bundle import load_bundle

    return load_bundle(model_dir / "model.keras", json.loads((model_dir / "manifest.json").read_text()))


@pytest.fixture(scope="session")
def app(bundle):
    from model_api import create_app

    return create_app({"TESTING": True, "MODEL_BUNDLE": bundle})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Real gunicorn with 2 workers, shared by a test module, always stopped."""
    running = start_server(model_dir, tmp_path_factory.mktemp("server"))
    try:
        yield running
    finally:
        stop_server(running)
