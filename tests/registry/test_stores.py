"""Store primitives both stores must get right: create-only writes and compare-and-swap."""

from __future__ import annotations

import pytest

from registry import Registry
from registry.store import ObjectExists


@pytest.fixture
def store(registry_uri: str):
    store = Registry.open(registry_uri, "xray").store
    store.write("seed", b"root")  # a local root comes into being on first write
    return store


def test_create_only_refuses_a_different_object(store):
    store.write("a/b.json", b"one", create_only=True)
    with pytest.raises(ObjectExists):
        store.write("a/b.json", b"two", create_only=True)
    assert store.read("a/b.json") == b"one"


def test_create_only_is_idempotent_for_identical_bytes_on_gcs(store, registry_uri):
    store.write("a/c.json", b"same", create_only=True)
    if registry_uri.startswith("gs://"):
        # A retried upload whose first try landed must not look like someone else's object.
        store.write("a/c.json", b"same", create_only=True)
    else:
        with pytest.raises(ObjectExists):
            store.write("a/c.json", b"same", create_only=True)


def test_compare_and_swap(store):
    missing, absent = store.read_with_token("p.json")
    assert missing is None
    assert store.write_if("p.json", b"v1", absent)
    assert not store.write_if("p.json", b"other", absent)  # it exists now
    data, token = store.read_with_token("p.json")
    assert data == b"v1"
    assert store.write_if("p.json", b"v2", token)
    assert not store.write_if("p.json", b"v3", token)  # stale token
    assert store.read("p.json") == b"v2"


def test_listing_helpers(store):
    for key in (
        "t/1/manifest.json",
        "t/1/model.keras",
        "t/2/model.keras",
        "t/10/manifest.json",
        "t/x/manifest.json",
    ):
        store.write(key, b"{}")
    assert store.numbered_with("t/", "manifest.json") == [1, 10]
    assert store.children("t/") == ["1", "10", "2", "x"]
    assert store.list("t/1/") == ["t/1/manifest.json", "t/1/model.keras"]
    assert store.read("t/3/manifest.json") is None
    assert store.exists("t/2/model.keras") and not store.exists("t/2/manifest.json")
