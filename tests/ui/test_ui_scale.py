"""The browser on 1,000 versions: a page costs its own rows, not the registry's size."""

from __future__ import annotations

import time
import uuid

import pytest
from html_text import by_id, table_rows, text
from registry_builder import many, story

from core.settings import load_settings
from registry import Registry

PAGE = 50


class ReadCounter:
    """Counts the objects a store reads (listings are counted apart: one call each)."""

    def __init__(self, store) -> None:
        self.reads = 0
        self.listings = 0
        # read_many reads through read, in both stores
        for name in ("read", "read_with_token"):
            setattr(store, name, self._counted(getattr(store, name), 1))
        for name in ("list", "numbered_metadata", "numbered_with", "children"):
            setattr(store, name, self._listed(getattr(store, name)))

    def _counted(self, fn, n):
        def wrapper(*args, **kwargs):
            self.reads += n
            return fn(*args, **kwargs)

        return wrapper

    def _listed(self, fn):
        def wrapper(*args, **kwargs):
            self.listings += 1
            return fn(*args, **kwargs)

        return wrapper


@pytest.mark.slow
def test_a_thousand_versions_cost_a_page_not_a_registry(reg: Registry, tmp_path, make_client):
    many(reg, tmp_path, 1000)
    counter = ReadCounter(reg.store)
    client = make_client(REGISTRY=reg, PAGE_SIZE=PAGE)
    for url, first in (("/", 1000), ("/?page=10", 550), ("/?page=20", 50)):
        counter.reads = 0
        started = time.perf_counter()
        response = client.get(url)
        elapsed = time.perf_counter() - started
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        rows = table_rows(html, "versions")
        assert len(rows) == PAGE and rows[0][0] == f"testing:{first}"
        assert "1000 testing versions" in text(by_id(html, "count"))
        # this page's manifests (read once, then kept) + the testing:latest approval box + the pointer
        assert counter.reads <= PAGE + 4, counter.reads
        assert elapsed < 2.0, f"{url} took {elapsed:.2f} s"
    counter.reads = 0
    assert client.get("/").status_code == 200
    assert counter.reads <= 4  # seen before: manifests come from memory

    counter.reads = 0
    assert len(table_rows(client.get("/audit").get_data(as_text=True), "events")) == PAGE
    assert counter.reads >= 1000  # the first look reads each event once ...
    counter.reads = 0
    started = time.perf_counter()
    html = client.get("/audit?page=3").get_data(as_text=True)
    assert time.perf_counter() - started < 2.0
    assert counter.reads <= 4 and "1000 of 1000 events" in text(by_id(html, "count"))  # ... and never again


@pytest.mark.gcs
def test_the_browser_reads_a_gcs_registry(fake_gcs, tmp_path, os_approver):
    """The same pages over the real google-cloud-storage client against fake-gcs-server."""
    from ui import create_app

    uri = fake_gcs.new_bucket(f"ui-{uuid.uuid4().hex[:12]}") + "/models"
    reg = Registry.open(uri, "xray-classifier", cache_dir=tmp_path / "cache")
    versions = story(reg, tmp_path / "runs")
    settings = load_settings(overrides={"registry.uri": uri, "registry.model_name": "xray-classifier"})
    client = create_app({"TESTING": True, "SETTINGS": settings}).test_client()
    html = client.get("/").get_data(as_text=True)
    assert [r[0] for r in table_rows(html, "versions")] == ["testing:3", "testing:2", "testing:1"]
    html = client.get("/compare").get_data(as_text=True)
    assert table_rows(html, "headline")[0] == ["Accuracy", "0.800", "0.867", "-0.067"]
    plot = client.get(f"/versions/{versions['v1']}/files/plots/confusion_matrix.png")
    assert plot.status_code == 200 and plot.data.startswith(b"\x89PNG")
    assert {r[2] for r in table_rows(client.get("/audit?actor=bob").get_data(as_text=True), "events")} == {
        "rollback"
    }
