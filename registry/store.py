"""The object-store interface both stores implement: keys are '/'-separated paths under a root."""

from __future__ import annotations

import abc
from collections.abc import Iterable
from pathlib import Path


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
    def write(self, key: str, data: bytes, *, create_only: bool = False) -> None:
        """Write an object atomically; create_only raises ObjectExists if it is there."""

    @abc.abstractmethod
    def write_if(self, key: str, data: bytes, token: object) -> bool:
        """Replace the object only if it is unchanged since `token` was read; False if not."""

    @abc.abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Upload a local file as an object."""

    @abc.abstractmethod
    def get_file(self, key: str, path: Path) -> None:
        """Download an object into a local file (raises FileNotFoundError if absent)."""

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
    def children(self, prefix: str) -> list[str]:
        """Names of the immediate sub-folders and objects under prefix."""

    @abc.abstractmethod
    def numbered_with(self, prefix: str, leaf: str) -> list[int]:
        """Integers N for which `prefix N/leaf` exists, ascending."""

    def read_many(self, keys: Iterable[str]) -> list[bytes | None]:
        """Read several objects (stores with network latency read them concurrently)."""
        return [self.read(key) for key in keys]
