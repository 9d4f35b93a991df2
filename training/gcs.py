"""Download a gs://bucket/prefix dataset into a local cache (only files that changed), by generation."""

from __future__ import annotations

import base64
import hashlib
import re
import sys
from pathlib import Path

from core.errors import MlopsError, UsageError
from core.gcs import storage_client
from core.safe_paths import UnsafePath, name_problem, remove_files_except, safe_join

# GCS bucket names: lowercase letters, digits, '-', '_' and '.', at most 222 characters.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{0,221}")


def split_uri(uri: str) -> tuple[str, str]:
    """gs://bucket/a/b → ("bucket", "a/b/"); a usage error for a bucket or prefix that is no safe name."""
    rest = uri.removeprefix("gs://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise MlopsError(f"dataset {uri}: no bucket name; use gs://BUCKET/PREFIX")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise UsageError(f"dataset {uri!r}: {bucket!r} is not a GCS bucket name; use gs://BUCKET/PREFIX")
    prefix = prefix.strip("/")
    if prefix and (why := name_problem(prefix)) is not None:
        # The prefix becomes a folder of the cache: `gs://B/../../x` would download and clean up there.
        raise UsageError(f"dataset {uri!r}: the prefix {prefix!r} is not a safe path ({why})")
    return bucket, f"{prefix}/" if prefix else ""


def _same_md5(path: Path, md5_b64: str | None) -> bool:
    if not md5_b64 or not path.is_file():
        return False
    return base64.b64encode(hashlib.md5(path.read_bytes()).digest()).decode() == md5_b64


def _local_names(uri: str, prefix: str, names: list[str], local_root: Path) -> dict[str, Path]:
    """{object name: its local path}, every name checked before anything is written or deleted."""
    targets = {
        name: safe_join(local_root, name[len(prefix) :], f"dataset {uri}: object {name}") for name in names
    }
    rels = {name[len(prefix) :] for name in names}
    for name in names:
        parts = name[len(prefix) :].split("/")
        if any("/".join(parts[:i]) in rels for i in range(1, len(parts))):
            raise UnsafePath(
                f"dataset {uri}: object {name} lies under another object's name; "
                "a local folder cannot also be a file"
            )
    return targets


def download_prefix(uri: str, cache_dir: Path) -> tuple[Path, dict[str, int]]:
    """Mirror the objects under a gs:// prefix into cache_dir/gcs/<bucket>/<prefix>.

    Returns that folder and the generation of every object read ({name relative to the prefix:
    generation}): the exact snapshot, even if the bucket changes while we download. Every object
    name is checked (core.safe_paths) before anything is written or deleted: one name that would
    leave the cache refuses the whole download.
    """
    from google.api_core import exceptions

    bucket_name, prefix = split_uri(uri)
    gcs_root = cache_dir / "gcs"
    local_root = safe_join(gcs_root, f"{bucket_name}/{prefix}".rstrip("/"), f"dataset {uri}")
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
    try:
        targets = _local_names(uri, prefix, [blob.name for blob in blobs], local_root)
    except UnsafePath as exc:
        raise UnsafePath(f"{exc}; nothing was downloaded or deleted") from None
    # Objects deleted from the bucket must not linger in the cache; only ever inside the cache's gcs/.
    keep = {blob.name[len(prefix) :] for blob in blobs}
    remove_files_except(local_root, keep, within=gcs_root)
    fetched = 0
    for blob in blobs:
        target = targets[blob.name]
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
        except OSError as exc:  # e.g. a folder left where a file now belongs
            raise MlopsError(f"dataset {uri}: cannot write {target}: {exc.strerror or exc}") from None
        fetched += 1
    print(f"dataset {uri}: {len(blobs)} objects, {fetched} downloaded to {local_root}", file=sys.stderr)
    return local_root, {blob.name[len(prefix) :]: int(blob.generation) for blob in blobs}
