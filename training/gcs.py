"""Download a gs://bucket/prefix dataset into a local cache (only files that changed), by generation."""

from __future__ import annotations

import base64
import hashlib
import sys
from pathlib import Path

from core.errors import MlopsError
from core.gcs import storage_client


def split_uri(uri: str) -> tuple[str, str]:
    """gs://bucket/a/b → ("bucket", "a/b/")."""
    rest = uri.removeprefix("gs://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise MlopsError(f"dataset {uri}: no bucket name; use gs://BUCKET/PREFIX")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def _same_md5(path: Path, md5_b64: str | None) -> bool:
    if not md5_b64 or not path.is_file():
        return False
    return base64.b64encode(hashlib.md5(path.read_bytes()).digest()).decode() == md5_b64


def download_prefix(uri: str, cache_dir: Path) -> tuple[Path, dict[str, int]]:
    """Mirror the objects under a gs:// prefix into cache_dir/gcs/<bucket>/<prefix>.

    Returns that folder and the generation of every object read ({name relative to the prefix:
    generation}): the exact snapshot, even if the bucket changes while we download.
    """
    from google.api_core import exceptions

    bucket_name, prefix = split_uri(uri)
    local_root = cache_dir / "gcs" / bucket_name / prefix
    try:
        blobs = [
            b for b in storage_client().list_blobs(bucket_name, prefix=prefix) if not b.name.endswith("/")
        ]
    except exceptions.NotFound:
        raise MlopsError(f"dataset {uri}: bucket {bucket_name!r} does not exist") from None
    except exceptions.GoogleAPICallError as exc:
        raise MlopsError(f"dataset {uri}: cannot list objects: {exc}") from None
    if not blobs:
        raise MlopsError(f"dataset {uri}: no objects under this prefix; check the path")
    wanted = {local_root / blob.name[len(prefix) :] for blob in blobs}
    if local_root.is_dir():  # objects deleted from the bucket must not linger in the cache
        for stale in [p for p in local_root.rglob("*") if p.is_file() and p not in wanted]:
            stale.unlink()
    fetched = 0
    for blob in blobs:
        target = local_root / blob.name[len(prefix) :]
        if _same_md5(target, blob.md5_hash):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            # The generation listed above, or nothing: an object replaced mid-download fails here
            # instead of mixing two snapshots.
            blob.download_to_filename(str(target), if_generation_match=blob.generation)
        except exceptions.PreconditionFailed:
            target.unlink(missing_ok=True)
            raise MlopsError(
                f"dataset {uri}: {blob.name} changed while downloading; run again to use the new one"
            ) from None
        fetched += 1
    print(f"dataset {uri}: {len(blobs)} objects, {fetched} downloaded to {local_root}", file=sys.stderr)
    return local_root, {blob.name[len(prefix) :]: int(blob.generation) for blob in blobs}
