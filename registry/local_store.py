"""A registry store in a local folder: atomic renames, hard-linked copies, flock for CAS."""

from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from core.safe_paths import name_problem
from registry.errors import RegistryError
from registry.refs import version_number
from registry.store import HashingWriter, ObjectExists, Store

_HIDDEN = (".tmp-", ".lock")


def _hidden(name: str) -> bool:
    return name.startswith(_HIDDEN[0]) or name.endswith(_HIDDEN[1])


class LocalStore(Store):
    """Objects are files under `root`; a key is a relative path."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().absolute()
        self.uri = f"file://{self.root}"

    def _path(self, key: str) -> Path:
        # Keys carry names from outside (a manifest's file list): none may climb out of the root.
        rel = key.rstrip("/")  # a listing prefix ends in '/'; "" is the root itself
        if rel and (why := name_problem(rel)) is not None:
            raise RegistryError(f"registry key {key!r} is not a safe path under {self.root}: {why}")
        return self.root / rel if rel else self.root

    def _tmp_beside(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.parent / f".tmp-{uuid.uuid4().hex}"

    @staticmethod
    def _write_tmp(tmp: Path, data: bytes) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    def root_exists(self) -> bool:
        return self.root.is_dir()

    def read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def read_with_token(self, key: str) -> tuple[bytes | None, object]:
        data = self.read(key)
        return data, None if data is None else hashlib.sha256(data).hexdigest()

    def write(
        self, key: str, data: bytes, *, create_only: bool = False, metadata: dict[str, str] | None = None
    ) -> None:
        path = self._path(key)
        tmp = self._tmp_beside(path)
        self._write_tmp(tmp, data)
        try:
            if create_only:
                # link() fails if the name exists: an atomic create-only publish of full content.
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise ObjectExists(key) from None
            else:
                os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        # flock is released by the kernel when a holder dies, so a crash never leaves a stale lock.
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / f"{path.name}.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def write_if(self, key: str, data: bytes, token: object) -> bool:
        path = self._path(key)
        with self._locked(path):
            _, current = self.read_with_token(key)
            if current != token:
                return False
            tmp = self._tmp_beside(path)
            self._write_tmp(tmp, data)
            os.replace(tmp, path)
            return True

    def put_file(self, key: str, path: Path) -> None:
        dst = self._path(key)
        tmp = self._tmp_beside(dst)
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)

    def get_file(self, key: str, path: Path) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._path(key), "rb") as src, open(path, "wb") as dst:
            out = HashingWriter(dst)
            while chunk := src.read(1 << 20):
                out.write(chunk)
        return out.hexdigest()

    def copy(self, src: str, dst: str) -> None:
        # Versions are immutable and verified on fetch, so a hard link is a safe O(1) copy.
        src_path, dst_path = self._path(src), self._path(dst)
        tmp = self._tmp_beside(dst_path)
        try:
            try:
                os.link(src_path, tmp)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                shutil.copyfile(src_path, tmp)
            os.replace(tmp, dst_path)
        finally:
            tmp.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        keys = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not _hidden(d)]
            rel = Path(dirpath).relative_to(self.root).as_posix()
            keys += [f"{rel}/{name}" for name in filenames if not _hidden(name)]
        return sorted(keys)

    def children(self, prefix: str) -> builtins.list[str]:
        try:
            return sorted(name for name in os.listdir(self._path(prefix)) if not _hidden(name))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # Drop folders the removal emptied (a half-registered version's), never the root itself.
        parent = path.parent
        while parent != self.root and parent.is_relative_to(self.root):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def list_times(self, prefix: str) -> dict[str, float]:
        times = {}
        for key in self.list(prefix):
            with contextlib.suppress(FileNotFoundError):
                times[key] = self._path(key).stat().st_mtime
        return times

    def temp_objects(self) -> dict[str, float]:
        # write/put_file/copy publish by rename from a `.tmp-*` beside the target; a crash leaves it.
        found: dict[str, float] = {}
        if not self.root.is_dir():
            return found
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for name in filenames:
                if name.startswith(_HIDDEN[0]):
                    path = Path(dirpath, name)
                    with contextlib.suppress(FileNotFoundError):
                        found[path.relative_to(self.root).as_posix()] = path.stat().st_mtime
        return found

    def numbered_with(self, prefix: str, leaf: str) -> builtins.list[int]:
        base = self._path(prefix)
        numbers = {name: version_number(name) for name in self.children(prefix)}
        return sorted(n for name, n in numbers.items() if n is not None and (base / name / leaf).is_file())
