"""A version's test_split.json names files of its dataset, never a file outside it."""

from __future__ import annotations

import hashlib
import json

import pytest

from registry.manifest import Manifest
from unit_testing.data import SplitError, load_test_split


@pytest.mark.parametrize("name", ["../secret.png", "a/../../secret.png", "/abs/secret.png"])
def test_a_split_entry_outside_the_dataset_is_refused_unread(tmp_path, name):
    dataset = tmp_path / "dataset"
    (dataset / "a").mkdir(parents=True)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not part of the dataset")
    version = tmp_path / "version"
    version.mkdir()
    entry = {"path": name, "label": "a", "sha256": hashlib.sha256(secret.read_bytes()).hexdigest()}
    if name.startswith("/"):
        entry["path"] = str(secret)
    (version / "test_split.json").write_text(json.dumps([entry]))
    with pytest.raises(SplitError, match="not a safe relative name"):
        load_test_split(version, Manifest.from_dict({"version": 1, "dataset": {"uri": str(dataset)}}))
