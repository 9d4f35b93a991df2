"""Hostile gs:// datasets: object names and prefixes that would leave the cache (real client, fake GCS).

Exit codes (docs/architecture.md): an object name that would leave the cache is an error in the data
(exit 1, core.safe_paths.UnsafePath naming the object); a --data prefix that would leave it is a usage
error (exit 2). Either way nothing is downloaded, written or deleted anywhere.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import EXIT_ERROR, EXIT_USAGE, UsageError
from core.safe_paths import UnsafePath
from training.gcs import download_prefix

pytestmark = pytest.mark.gcs

ESCAPING_OBJECT = "data/covid/../../../../elsewhere/ESCAPED.png"  # the object the issue reports


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def _files(root: Path) -> dict[str, bytes]:
    """Every file under root (symlinks not followed) with its bytes."""
    found = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def _dataset_bucket(fake_gcs, name: str, prefix: str = "data"):
    """A bucket holding a valid two-class dataset under prefix."""
    bucket = fake_gcs.client().create_bucket(name)
    for c, label in enumerate(("covid", "normal")):
        for i in range(3):
            bucket.blob(f"{prefix}/{label}/{i}.png").upload_from_string(_png(c * 10 + i))
    return bucket


def test_an_object_escaping_the_cache_is_refused_and_nothing_changes(fake_gcs, tmp_path):
    bucket = _dataset_bucket(fake_gcs, "hostile-object")
    cache = tmp_path / "a" / "b" / "cache"
    download_prefix("gs://hostile-object/data", cache)  # an earlier good download: the cleanup has work
    bucket.blob(ESCAPING_OBJECT).upload_from_string(_png(99))
    # Where the object would land, and a file there that a cleanup run on it would delete.
    landing = cache / "gcs" / "hostile-object" / "data" / "covid" / "../../../../elsewhere"
    landing.mkdir(parents=True)
    (landing / "precious.txt").write_text("keep me")
    before = _files(tmp_path)

    with pytest.raises(UnsafePath) as caught:
        download_prefix("gs://hostile-object/data", cache)

    message = str(caught.value)
    assert ESCAPING_OBJECT in message and "'..'" in message and "nothing was downloaded" in message
    assert _files(tmp_path) == before  # nothing written, nothing deleted, the good cache intact
    assert not (landing / "ESCAPED.png").exists()


def test_the_escaping_object_through_mlops_train_is_exit_1(fake_gcs, cli, settings, tmp_path):
    bucket = _dataset_bucket(fake_gcs, "hostile-cli")
    bucket.blob(ESCAPING_OBJECT).upload_from_string(_png(99))
    landing = (
        settings.cache_dir / "gcs" / "hostile-cli" / "data" / "covid" / "../../../../elsewhere"
    ).resolve()
    before = _files(tmp_path)

    result = cli("train", "--data", "gs://hostile-cli/data", "--epochs", "1", "--image-size", "16")

    assert result.code == EXIT_ERROR, result.err
    assert ESCAPING_OBJECT in result.err and "Traceback" not in result.err
    assert not landing.exists()
    assert {k for k in _files(tmp_path) if "ESCAPED" in k} == set()
    assert {k: v for k, v in _files(tmp_path).items() if k in before} == before


def test_a_prefix_escaping_the_cache_is_a_usage_error_and_nothing_changes(fake_gcs, tmp_path):
    # The bucket writer put objects under the escaping prefix itself: GCS names are only strings.
    bucket = fake_gcs.client().create_bucket("hostile-prefix")
    for i in range(3):
        bucket.blob(f"../../../../somewhere/covid/{i}.png").upload_from_string(_png(i))
    cache = tmp_path / "x" / "cache"
    somewhere = tmp_path / "somewhere"  # cache/gcs/hostile-prefix/../../../../somewhere
    somewhere.mkdir()
    (somewhere / "unrelated.txt").write_text("must survive")
    before = _files(tmp_path)

    with pytest.raises(UsageError, match=r"prefix '\.\./\.\./\.\./\.\./somewhere' is not a safe path"):
        download_prefix("gs://hostile-prefix/../../../../somewhere", cache)

    assert _files(tmp_path) == before
    assert (somewhere / "unrelated.txt").read_text() == "must survive"


def test_the_escaping_prefix_through_mlops_train_is_exit_2(fake_gcs, cli, settings, tmp_path):
    bucket = fake_gcs.client().create_bucket("hostile-prefix-cli")
    for i in range(3):
        bucket.blob(f"../../../../somewhere/covid/{i}.png").upload_from_string(_png(i))
    somewhere = (settings.cache_dir / "gcs" / "hostile-prefix-cli" / "../../../../somewhere").resolve()
    somewhere.mkdir(parents=True, exist_ok=True)
    (somewhere / "unrelated.txt").write_text("must survive")
    before = _files(tmp_path)

    result = cli("train", "--data", "gs://hostile-prefix-cli/../../../../somewhere", "--epochs", "1")

    assert result.code == EXIT_USAGE, result.err
    assert "not a safe path" in result.err and "Traceback" not in result.err
    assert _files(tmp_path) == before
    assert (somewhere / "unrelated.txt").read_text() == "must survive"


@pytest.mark.parametrize(
    "name",
    [
        "data/a/\\..\\..\\x.png",  # backslashes
        "data/a/x\x00.png",  # NUL
        "data/a/x\n.png",  # newline
        "data/a/x\u2028.png",  # unicode line separator
        "data/a//x.png",  # empty segment
        "data/" + "a" * 300 + "/x.png",  # over-long segment
    ],
)
def test_other_hostile_object_names_are_refused_before_any_write(fake_gcs, tmp_path, name):
    bucket_name = "hostile-" + hashlib.sha256(name.encode()).hexdigest()[:12]
    bucket = _dataset_bucket(fake_gcs, bucket_name)
    try:
        bucket.blob(name).upload_from_string(_png(1))
    except Exception as exc:  # the emulator may refuse a name the client sends: nothing to test then
        pytest.fail(f"fake-gcs-server refused the object name {name!r}: {exc}")
    if not any(b.name == name for b in fake_gcs.client().list_blobs(bucket_name)):
        pytest.fail(f"fake-gcs-server stored {name!r} under another name")
    before = _files(tmp_path)

    with pytest.raises(UnsafePath, match="nothing was downloaded"):
        download_prefix(f"gs://{bucket_name}/data", tmp_path / "cache")

    assert _files(tmp_path) == before
