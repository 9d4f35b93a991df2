"""The object-store interface both stores implement: keys are '/'-separated paths under a root."""

from __future__ import annotations

import abc
import builtins
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from registry.errors import RegistryError


class HashingWriter:
    """A binary file wrapper that hashes everything written through it."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.fh.write(data)

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


class ObjectExists(Exception):
    """A create-only write found the object already there (internal: the caller retries)."""


class Store(abc.ABC):
    """Minimal object store: immutable objects plus one compare-and-swap primitive."""

    uri: str

    @abc.abstractmethod
    def root_exists(self) -> bool:
        """Whether the registry root (folder or bucket) exists."""

    @abc.abstractmethod
    def read(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such object."""

    @abc.abstractmethod
    def read_with_token(self, key: str) -> tuple[bytes | None, object]:
        """The object's bytes (None if absent) and a token for write_if."""

    @abc.abstractmethod
    def write(
        self, key: str, data: bytes, *, create_only: bool = False, metadata: dict[str, str] | None = None
    ) -> None:
        """Write an object atomically; create_only raises ObjectExists if it is there.

        `metadata` rides along where the store keeps object metadata that listings return (GCS),
        so a listing can answer without reading each object; other stores ignore it.
        """

    @abc.abstractmethod
    def write_if(self, key: str, data: bytes, token: object) -> bool:
        """Replace the object only if it is unchanged since `token` was read; False if not."""

    @abc.abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Upload a local file as an object."""

    @abc.abstractmethod
    def get_file(self, key: str, path: Path) -> str:
        """Download an object into a local file; return the sha256 of what was written.

        Hashing while writing reads the bytes once (raises FileNotFoundError if absent).
        """

    @abc.abstractmethod
    def copy(self, src: str, dst: str) -> None:
        """Copy an object inside the store without passing its bytes through this process."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object exists."""

    @abc.abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Keys of every object under prefix (a folder path ending in '/'), sorted."""

    @abc.abstractmethod
    def children(self, prefix: str) -> builtins.list[str]:
        """Names of the immediate sub-folders and objects under prefix."""

    @abc.abstractmethod
    def numbered_with(self, prefix: str, leaf: str) -> builtins.list[int]:
        """Integers N for which `prefix N/leaf` exists, ascending."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object (absent already: nothing to do). Only housekeeping (fsck) deletes."""

    @abc.abstractmethod
    def list_times(self, prefix: str) -> dict[str, float]:
        """Keys under prefix with their last-modified time (seconds since the epoch)."""

    def temp_objects(self) -> dict[str, float]:
        """Leftovers of interrupted writes (key: last-modified time); stores with atomic uploads have none."""
        return {}

    def numbered_metadata(self, prefix: str, leaf: str) -> dict[int, dict[str, str]]:
        """Like numbered_with, with each leaf's listed metadata ({} where the store has none)."""
        return {n: {} for n in self.numbered_with(prefix, leaf)}

    def read_many(self, keys: Iterable[str]) -> builtins.list[bytes | None]:
        """Read several objects (stores with network latency read them concurrently)."""
        return [self.read(key) for key in keys]


def open_store(uri: str) -> Store:
    """The store behind a registry URI: file://PATH (or a plain path) or gs://BUCKET[/PREFIX]."""
    if uri.startswith("gs://"):
        from registry.gcs_store import GcsStore  # google-cloud-storage only when needed

        return GcsStore.from_uri(uri)
    if uri.startswith("file://"):
        path = uri.removeprefix("file://")
        if not path:
            raise RegistryError(f"registry uri {uri!r} has no path; use file:///absolute/path")
        from registry.local_store import LocalStore

        return LocalStore(Path(path))
    if "://" in uri:
        raise RegistryError(f"unsupported registry uri {uri!r}; use file://PATH or gs://BUCKET[/PREFIX]")
    from registry.local_store import LocalStore

    return LocalStore(Path(uri))
