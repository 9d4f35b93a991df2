"""Adaptive batching inside a worker: concurrent requests share one graph call.

A worker's request threads hand their encoded images to one batching thread, which waits for the
first request, then up to `max_wait_s` for more (never past `max_size` images), runs one call of the
compiled graph over all of them and hands each request its rows back. Off by default (api.batch_max_size
= 1): benchmarks/bench_api.py measures where it pays. A batch with an undecodable image is run again
request by request, so only the request that sent it gets the error.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

Run = Callable[[list[bytes]], tuple[np.ndarray, np.ndarray]]
_Item = tuple[list[bytes], Future]


class Batcher:
    """Runs RUN (encoded images → probabilities, statistics) over the images of concurrent requests."""

    def __init__(self, run: Run, max_size: int, max_wait_s: float) -> None:
        if max_size < 2 or max_wait_s < 0:
            raise ValueError("a batcher needs max_size >= 2 and max_wait_s >= 0")
        self._run = run
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self.batches: list[int] = []  # images per graph call, the last 1000 (tests, benchmarks)
        self._thread = threading.Thread(target=self._loop, name="mlops-batcher", daemon=True)
        self._thread.start()

    def __call__(self, images: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and statistics for IMAGES, computed with whatever else arrives meanwhile."""
        if len(images) >= self.max_size:
            return self._run(images)  # already a full batch: waiting would only add latency
        done: Future = Future()
        self._queue.put((images, done))
        return done.result()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            items, count = [first], len(first[0])
            deadline = time.monotonic() + self.max_wait_s
            while count < self.max_size:
                try:
                    remaining = deadline - time.monotonic()
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if count + len(item[0]) > self.max_size:
                    self._serve([item])  # would overflow this batch: it goes alone, right now
                    continue
                items.append(item)
                count += len(item[0])
            self._serve(items)

    def _serve(self, items: list[_Item]) -> None:
        """One graph call for ITEMS; on failure, one call each so the error reaches only its sender."""
        images = [image for request, _ in items for image in request]
        try:
            probabilities, stats = self._run(images)
        except Exception:
            if len(items) == 1:
                _settle(items[0], self._run)
                return
            for item in items:
                _settle(item, self._run)
            return
        self.batches = [*self.batches[-999:], len(images)]
        start = 0
        for request, done in items:
            end = start + len(request)
            done.set_result((probabilities[start:end], stats[start:end]))
            start = end


def _settle(item: _Item, run: Run) -> None:
    images, done = item
    try:
        done.set_result(run(images))
    except Exception as exc:  # the sender's own error (BadImageError ...), raised in its thread
        done.set_exception(exc)
