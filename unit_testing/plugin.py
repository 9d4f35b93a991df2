"""The model test suite's pytest plugin: `--model-ref`, `--api-url` and the fixtures every model test uses.

A plugin rather than a conftest.py, so a suite kept in its own repository (`mlops test-model REF
--suite git+URL@REV`) gets the same fixtures without copying them: `unit_testing/pytest.ini` loads it
(`-p unit_testing.plugin`) for the built-in suite and for any other. Run through `mlops test-model
REF`, or directly: `pytest unit_testing/ --model-ref testing:latest`.
"""

from __future__ import annotations

import random

import pytest

from core.settings import Settings, load_settings
from registry.manifest import Manifest
from unit_testing.data import SplitImage, load_test_split
from unit_testing.serving import load_served_model


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("model", "model under test")
    group.addoption("--model-ref", help="registry ref of the model under test, e.g. testing:7")
    group.addoption("--api-url", help="base URL of a live API serving that model (HTTP smoke tests)")


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("--model-ref") and not config.getoption("help"):
        raise pytest.UsageError("--model-ref REF is required (e.g. --model-ref testing:latest)")


def pytest_report_header(config: pytest.Config) -> str:
    return f"model under test: {config.getoption('--model-ref')}"


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The same settings the `mlops` CLI uses (it passes them on in the environment)."""
    return load_settings()


@pytest.fixture(scope="session")
def model_ref(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--model-ref")


@pytest.fixture(scope="session")
def local_model(model_ref: str, settings: Settings):
    """The version's files, fetched from the registry and verified by sha256."""
    from registry import open_registry

    return open_registry(settings).fetch(model_ref)


@pytest.fixture(scope="session")
def manifest(local_model) -> Manifest:
    """The version's typed manifest (registry.manifest.Manifest)."""
    return local_model.manifest


@pytest.fixture(scope="session")
def classes(manifest: Manifest) -> list[str]:
    return list(manifest.classes)


@pytest.fixture(scope="session")
def served(local_model, manifest: Manifest):
    """The model loaded through the serving code path."""
    return load_served_model(local_model.model_path, manifest)


@pytest.fixture(scope="session")
def test_split(local_model, manifest: Manifest, settings: Settings) -> list[SplitImage]:
    images = load_test_split(local_model.dir, manifest, settings.cache_dir, settings.sources.git_timeout_s)
    if not images:
        pytest.fail("the version's test split is empty: nothing to evaluate on")
    return images


@pytest.fixture(scope="session")
def sample(test_split: list[SplitImage], settings: Settings) -> list[SplitImage]:
    """A fixed-seed sample of the test split for the slower per-image tests."""
    k = min(settings.model_tests.sample_size, len(test_split))
    return random.Random(0).sample(test_split, k)


@pytest.fixture(scope="session")
def split_predictions(served, test_split: list[SplitImage]):
    """Probabilities for the whole test split, in batches."""
    import numpy as np

    rows = [
        served.predict_encoded([img.data for img in test_split[i : i + 64]])
        for i in range(0, len(test_split), 64)
    ]
    return np.concatenate(rows)
