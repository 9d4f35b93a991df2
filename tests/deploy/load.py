"""Concurrent clients posting images to an API's /predict, every outcome counted (the deploy tests' load)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence

import requests

from deploy.smoke import probe_image


class Load:
    """A bounded load loop: each answer counted by the version that served it, each failure kept.

    keepalive False: a new connection per request; True: each client reuses its connection
    (requests.Session), so a server that goes away under an idle connection would show up.
    images: PNGs to cycle through (sent as the raw body); default the smoke test's probe image.
    """

    def __init__(
        self, url: str, threads: int = 3, keepalive: bool = False, images: Sequence[bytes] = ()
    ) -> None:
        self.url = url
        self.keepalive = keepalive
        self.images = list(images) or [probe_image()]
        self.versions: Counter[int] = Counter()  # version -> successful predictions
        self.failures: list[str] = []
        self.requests = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, offset: int) -> None:
        client = requests.Session()
        headers = {"Content-Type": "image/png", **({} if self.keepalive else {"Connection": "close"})}
        i = offset
        while not self._stop.is_set():
            image = self.images[i % len(self.images)]
            i += 7  # clients walk the images at different offsets
            try:
                response = client.post(f"{self.url}/predict", data=image, headers=headers, timeout=30)
                ok = response.status_code == 200
                outcome = response.json()["model"]["version"] if ok else None
                failure = None if ok else f"HTTP {response.status_code}: {response.text[:120]}"
            except (requests.RequestException, ValueError, KeyError) as exc:
                outcome, failure = None, f"{type(exc).__name__}: {exc}"
            with self._lock:
                self.requests += 1
                if failure:
                    self.failures.append(failure)
                else:
                    self.versions[outcome] += 1
        client.close()

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
