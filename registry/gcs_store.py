"""A registry store in a GCS bucket: generation preconditions for CAS, server-side rewrites for copies.

Talks to the real google-cloud-storage client made by core.gcs (anonymous against an emulator,
Application Default Credentials otherwise).
"""

from __future__ import annotations

import builtins
import contextlib
import functools
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.auth.exceptions import GoogleAuthError
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from core.gcs import CredentialsError, storage_client
from registry.errors import RegistryError
from registry.refs import version_number
from registry.store import HashingWriter, ObjectExists, Store

T = TypeVar("T")
_READ_THREADS = 8  # the client's HTTP pool keeps 10 connections
# Every command asks for the bucket first: an unreachable endpoint fails in seconds, not the
# default two minutes of retries.
_FIRST_CALL_RETRY = DEFAULT_RETRY.with_timeout(10.0)


def _gcs_errors(method: Callable[..., T]) -> Callable[..., T]:
    """Turn transport and permission failures into one-line RegistryErrors."""

    @functools.wraps(method)
    def wrapper(self: GcsStore, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except gexc.Forbidden as exc:
            raise RegistryError(
                f"no permission on {self.uri}: {exc.message}; check the credentials"
            ) from None
        except gexc.Unauthorized as exc:
            raise RegistryError(f"not authenticated for {self.uri}: {exc.message}") from None
        except GoogleAuthError as exc:  # expired or revoked credentials while refreshing a token
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise RegistryError(f"Google credentials failed for {self.uri}: {first}") from None
        except (gexc.GoogleAPIError, OSError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise RegistryError(
                f"GCS request to {self.uri} failed: {first}; check network access (or STORAGE_EMULATOR_HOST)"
            ) from None

    return wrapper


def _client() -> storage.Client:
    """The project's one client factory (core.gcs), its credential error as a RegistryError."""
    try:
        return storage_client()
    except CredentialsError as exc:
        raise RegistryError(f"registry: {exc}") from None


class GcsStore(Store):
    """Objects under gs://BUCKET/PREFIX/; a key is the name relative to the prefix."""

    def __init__(self, bucket: str, prefix: str = "", client: storage.Client | None = None) -> None:
        self.client = client or _client()
        self.bucket = self.client.bucket(bucket)
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.uri = f"gs://{bucket}/{self.prefix}".rstrip("/")

    @classmethod
    def from_uri(cls, uri: str) -> GcsStore:
        """Parse gs://BUCKET[/PREFIX]."""
        bucket, _, prefix = uri.removeprefix("gs://").partition("/")
        if not bucket:
            raise RegistryError(f"registry uri {uri!r} has no bucket; use gs://BUCKET[/PREFIX]")
        return cls(bucket, prefix)

    def _blob(self, key: str) -> storage.Blob:
        return self.bucket.blob(self.prefix + key)

    @_gcs_errors
    def root_exists(self) -> bool:
        try:
            found: bool = self.bucket.exists(timeout=10, retry=_FIRST_CALL_RETRY)  # the client is untyped
            return found
        except gexc.Forbidden:
            return True  # object-level access without bucket metadata rights: let object calls decide

    @_gcs_errors
    def read(self, key: str) -> bytes | None:
        try:
            data: bytes = self._blob(key).download_as_bytes()  # the client is untyped
            return data
        except gexc.NotFound:
            return None

    @_gcs_errors
    def read_with_token(self, key: str) -> tuple[bytes | None, object]:
        blob = self.bucket.get_blob(self.prefix + key)
        if blob is None:
            return None, 0  # generation 0 = "must not exist" in a precondition
        try:
            # Pin the generation we saw, so bytes and token always belong together.
            return blob.download_as_bytes(if_generation_match=blob.generation), blob.generation
        except (gexc.NotFound, gexc.PreconditionFailed):
            return self.read_with_token(key)  # replaced between the two calls: read again

    @_gcs_errors
    def write(
        self, key: str, data: bytes, *, create_only: bool = False, metadata: dict[str, str] | None = None
    ) -> None:
        blob = self._blob(key)
        blob.metadata = metadata
        try:
            blob.upload_from_string(
                data, content_type="application/json", if_generation_match=0 if create_only else None
            )
        except gexc.PreconditionFailed:
            # A retried request whose first try landed also fails its precondition: same bytes = ours.
            if self.read(key) != data:
                raise ObjectExists(key) from None

    @_gcs_errors
    def write_if(self, key: str, data: bytes, token: object) -> bool:
        assert isinstance(token, int)
        try:
            self._blob(key).upload_from_string(
                data, content_type="application/json", if_generation_match=token
            )
        except gexc.PreconditionFailed:
            # As in write(): our own first try may have landed; the new content is unique per call.
            return self.read(key) == data
        return True

    @_gcs_errors
    def put_file(self, key: str, path: Path) -> None:
        self._blob(key).upload_from_filename(str(path))

    @_gcs_errors
    def get_file(self, key: str, path: Path) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(path, "wb") as fh:
                out = HashingWriter(fh)
                self._blob(key).download_to_file(out)
        except gexc.NotFound:
            path.unlink(missing_ok=True)
            raise FileNotFoundError(f"{self.uri}/{key}") from None
        return out.hexdigest()

    @_gcs_errors
    def copy(self, src: str, dst: str) -> None:
        # rewrite() is server-side and resumable: large objects take several calls, bytes never pass here.
        source, target = self._blob(src), self._blob(dst)
        token, _, _ = target.rewrite(source)
        while token is not None:
            token, _, _ = target.rewrite(source, token=token)

    @_gcs_errors
    def exists(self, key: str) -> bool:
        found: bool = self._blob(key).exists()  # the client is untyped
        return found

    @_gcs_errors
    def list(self, prefix: str) -> list[str]:
        full = self.prefix + prefix
        return sorted(b.name[len(self.prefix) :] for b in self.client.list_blobs(self.bucket, prefix=full))

    @_gcs_errors
    def children(self, prefix: str) -> builtins.list[str]:
        full = self.prefix + prefix
        pages = self.client.list_blobs(self.bucket, prefix=full, delimiter="/")
        names = [b.name[len(full) :] for b in pages]
        names += [p[len(full) :].rstrip("/") for p in pages.prefixes]
        return sorted(n for n in names if n)

    @_gcs_errors
    def delete(self, key: str) -> None:
        with contextlib.suppress(gexc.NotFound):
            self._blob(key).delete()

    @_gcs_errors
    def list_times(self, prefix: str) -> dict[str, float]:
        full = self.prefix + prefix
        return {
            b.name[len(self.prefix) :]: b.updated.timestamp()
            for b in self.client.list_blobs(self.bucket, prefix=full)
        }

    def numbered_with(self, prefix: str, leaf: str) -> builtins.list[int]:
        return list(self.numbered_metadata(prefix, leaf))

    @_gcs_errors
    def numbered_metadata(self, prefix: str, leaf: str) -> dict[int, dict[str, str]]:
        full = self.prefix + prefix
        # match_glob lets GCS return only the leaves; the suffix check keeps emulators without it right.
        blobs = self.client.list_blobs(self.bucket, prefix=full, match_glob=f"{full}*/{leaf}")
        found = {}
        for blob in blobs:
            middle, _, rest = blob.name[len(full) :].partition("/")
            number = version_number(middle)
            if rest == leaf and number is not None:
                found[number] = dict(blob.metadata or {})
        return dict(sorted(found.items()))

    def read_many(self, keys: Iterable[str]) -> builtins.list[bytes | None]:
        keys = list(keys)
        if len(keys) < 2:
            return [self.read(key) for key in keys]
        with ThreadPoolExecutor(max_workers=_READ_THREADS) as pool:
            return list(pool.map(self.read, keys))
