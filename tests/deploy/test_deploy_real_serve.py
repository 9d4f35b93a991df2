"""End to end: `mlops deploy --target local` switches the real `mlops serve` between two real models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from load import Load
from manifests import lineage

import registry
from core.processes import free_port
from core.settings import load_settings
from deploy import local

pytestmark = pytest.mark.slow


@pytest.fixture
def two_versions(settings, promote) -> list[int]:
    """Two tiny Keras models for [64, 64, 1] inputs, registered and promoted (production:1, :2)."""
    import keras

    reg = registry.open_registry(settings)
    versions = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        model = keras.Sequential(
            [
                keras.Input((64, 64, 1)),
                keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(3, activation="softmax"),
            ]
        )
        folder = Path(f"candidate-{seed}")
        folder.mkdir()
        model.save(folder / "model.keras")
        manifest = {
            "model_file": "model.keras",
            "classes": ["covid", "normal", "pneumonia"],
            "preprocessing": {"image_size": 64, "channels": 1},
            "gate": {"passed": True},
        }
        version = reg.register(folder, lineage(**manifest), actor="test")
        promote(reg, version.ref, actor="test", reason="deploy e2e")
        versions.append(version.version)
    return versions


def test_real_serve_switches_without_a_failed_request(cli, monkeypatch, two_versions):
    port = free_port()
    monkeypatch.setenv("MLOPS_API_WORKERS", "1")
    monkeypatch.setenv("MLOPS_API_THREADS", "2")
    try:
        first = cli("deploy", "--target", "local", "--model", "production:1", "--port", str(port), "--json")
        assert first.code == 0, first.err[-2000:]
        url = json.loads(first.out)["url"]
        with Load(url, threads=2) as load:
            second = cli("deploy", "--target", "local", "--json")  # production:current = v2
        assert second.code == 0, second.err[-2000:]
        assert json.loads(second.out)["model"]["version"] == two_versions[1]
        assert load.failures == [], load.failures[:5]
        assert set(load.versions) == set(two_versions)
    finally:
        cli("deploy", "--target", "local", "--stop")
    assert local.load_state(load_settings())["current"] is None
