"""The exact test split of a version: `test_split.json` entries read from the dataset uri."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from core import git_source
from core.dicom import as_encoded_image
from core.errors import MlopsError
from core.gcs import storage_client
from core.safe_paths import check_name, safe_join
from registry.manifest import Manifest


class SplitError(Exception):
    """The stored test split cannot be read back as it was when the version was trained."""


@dataclass(frozen=True)
class SplitImage:
    path: str
    label: str
    data: bytes


def _reader(uri: str, cache_dir: Path | None, git_timeout_s: float):
    """A function relpath → bytes for a local folder, file://, gs:// or git+URL@COMMIT dataset."""
    if git_source.is_git_uri(uri):
        if cache_dir is None:
            raise SplitError(f"the test split lives in {uri}: a cache folder is needed to check it out")
        try:  # the commit the version was trained on: the same files, from the cache if still there
            root = git_source.checkout(uri, cache_dir, git_timeout_s).root
        except MlopsError as exc:
            raise SplitError(f"cannot read the test split from {uri}: {exc}") from None
        return lambda rel: safe_join(root, rel, f"test image under {uri}").read_bytes()
    if uri.startswith("gs://"):
        bucket_name, _, prefix = uri[len("gs://") :].partition("/")
        bucket = storage_client().bucket(bucket_name)
        return lambda rel: bucket.blob(f"{prefix.rstrip('/')}/{rel}".lstrip("/")).download_as_bytes()
    root = Path(uri.removeprefix("file://"))
    return lambda rel: safe_join(root, rel, f"test image under {uri}").read_bytes()


def load_test_split(
    version_dir: Path,
    manifest: Manifest,
    cache_dir: Path | None = None,
    git_timeout_s: float = git_source.DEFAULT_TIMEOUT_S,
) -> list[SplitImage]:
    """Every test image of the version, verified against the sha256 recorded at training time."""
    split_file = version_dir / "test_split.json"
    if not split_file.exists():
        raise SplitError(f"{split_file.name} is missing from version {manifest.version}")
    entries = json.loads(split_file.read_text())
    uri = manifest.dataset.uri
    if not uri:
        raise SplitError("manifest has no dataset.uri to read the test split from")
    read = _reader(str(uri), cache_dir, git_timeout_s)
    images = []
    for entry in entries:
        try:
            # test_split.json names files of the dataset: none outside it (core.safe_paths).
            data = read(check_name(entry["path"], f"test image under {uri}"))
        except Exception as exc:  # OSError locally, google.api_core errors on gs://
            raise SplitError(f"cannot read test image {entry['path']} under {uri}: {exc}") from None
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise SplitError(f"test image {entry['path']} under {uri} changed since the version was trained")
        # DICOM rendered to PNG as the API renders it: the suite feeds the serving graph directly.
        images.append(SplitImage(entry["path"], entry["label"], as_encoded_image(data, what=entry["path"])))
    return images
