"""Fixtures for the registry browser: a registry with a story in it, the app, and its client."""

from __future__ import annotations

from pathlib import Path

import pytest
from registry_builder import story

from core.settings import Settings, load_settings
from registry import Registry

MODEL = "xray-classifier"


@pytest.fixture
def registry_uri(tmp_path: Path) -> str:
    return f"file://{tmp_path / 'registry'}"


@pytest.fixture
def reg(registry_uri: str, tmp_path: Path, os_approver: str) -> Registry:
    return Registry.open(registry_uri, MODEL, cache_dir=tmp_path / "cache")


@pytest.fixture
def versions(reg: Registry, tmp_path: Path) -> dict[str, int]:
    """v1 in production, v2 promoted then rolled back, v3 a candidate whose tests failed."""
    return story(reg, tmp_path / "runs")


@pytest.fixture
def ui_settings(registry_uri: str) -> Settings:
    return load_settings(overrides={"registry.uri": registry_uri, "registry.model_name": MODEL})


@pytest.fixture
def make_client(ui_settings: Settings):
    """make_client(**config) -> a test client of a fresh browser app over the test registry."""
    from ui import create_app

    def make(**config):
        return create_app({"TESTING": True, "SETTINGS": ui_settings, **config}).test_client()

    return make


@pytest.fixture
def client(make_client, versions):
    return make_client()
