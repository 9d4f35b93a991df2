"""The prediction log's writer: records queue in memory and a background thread stores them in batches.

The request path only does `queue.put_nowait`: it never waits on storage. When the queue is full
(storage slow or down) the record is dropped and counted. A failed write is retried with backoff
while new records keep queueing (and, once the queue is full, dropping). `close` flushes what is
queued within a deadline: gunicorn's `worker_exit` hook calls it on a graceful stop.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("model_api.prediction_log")

Sink = Callable[[Sequence[dict[str, Any]]], object]
_STOP = object()
_MAX_BACKOFF_S = 30.0


@dataclass
class WriterStats:
    """What a writer did, for tests and the shutdown line (the same numbers go to Prometheus)."""

    queued: int = 0
    written: int = 0
    dropped: int = 0
    failures: int = 0
    batches: list[int] = field(default_factory=list)


class BatchWriter:
    """A bounded queue of records and a daemon thread that hands them to SINK in batches."""

    def __init__(
        self,
        name: str,
        sink: Sink,
        *,
        batch_size: int,
        flush_interval_s: float,
        queue_size: int,
        on_written: Callable[[int], None] = lambda n: None,
        on_dropped: Callable[[int], None] = lambda n: None,
        on_failure: Callable[[], None] = lambda: None,
    ) -> None:
        if batch_size < 1 or queue_size < 1 or flush_interval_s <= 0:
            raise ValueError("batch_size and queue_size must be >= 1 and flush_interval_s > 0")
        self.name = name
        self._sink = sink
        self._batch_size = batch_size
        self._interval = flush_interval_s
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._on_written, self._on_dropped, self._on_failure = on_written, on_dropped, on_failure
        self._closing = threading.Event()
        self._count_lock = threading.Lock()  # request threads count concurrently
        self._lost_in_writer = 0  # records the writer gave up on (also counted as dropped)
        self.stats = WriterStats()
        self._thread = threading.Thread(target=self._run, name=f"mlops-{name}-writer", daemon=True)
        self._thread.start()

    def put(self, record: dict[str, Any]) -> bool:
        """Queue one record without blocking; False (and counted) when the queue is full or closed."""
        if self._closing.is_set():
            self._drop(1)
            return False
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._drop(1)
            return False
        with self._count_lock:
            self.stats.queued += 1
        return True

    def close(self, timeout: float) -> int:
        """Flush what is queued within TIMEOUT seconds and stop; return how many records were lost."""
        if not self._closing.is_set():
            self._closing.set()
            # A full queue: the thread still stops, it sees _closing after its current batch.
            with contextlib.suppress(queue.Full):
                self._queue.put(_STOP, timeout=max(timeout, 0.001))
        self._thread.join(timeout)
        lost = self.stats.queued - self.stats.written - self._lost_in_writer
        if self._thread.is_alive():
            log.warning("%s log: %d records not stored within %.0f s at shutdown", self.name, lost, timeout)
        return max(lost, 0)

    def _drop(self, count: int) -> None:
        with self._count_lock:
            self.stats.dropped += count
        self._on_dropped(count)

    def _run(self) -> None:
        batch: list[dict[str, Any]] = []
        deadline = time.monotonic() + self._interval
        stopping = False
        while not stopping:
            try:
                item = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0) if batch else None)
                if item is _STOP:
                    stopping = True
                else:
                    if not batch:
                        deadline = time.monotonic() + self._interval
                    batch.append(item)
            except queue.Empty:
                pass
            if stopping:
                batch += self._drain()
            if batch and (stopping or len(batch) >= self._batch_size or time.monotonic() >= deadline):
                for start in range(0, len(batch), self._batch_size):
                    self._store(batch[start : start + self._batch_size], final=stopping)
                batch = []

    def _drain(self) -> list[dict[str, Any]]:
        items = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return items
            if item is not _STOP:
                items.append(item)

    def _store(self, batch: list[dict[str, Any]], final: bool) -> None:
        """Hand one batch to the sink, retrying with backoff; after close, one last try."""
        backoff = 1.0
        while True:
            try:
                self._sink(batch)
            except Exception as exc:  # any storage failure: keep serving, retry, count
                self.stats.failures += 1
                self._on_failure()
                log.warning("%s log: storing %d records failed: %s", self.name, len(batch), exc)
                if final:
                    self._lost_in_writer += len(batch)
                    self._drop(len(batch))
                    return
                final = self._closing.wait(backoff)  # woken by close: one last try, then give up
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                continue
            self.stats.written += len(batch)
            self.stats.batches.append(len(batch))
            self._on_written(len(batch))
            return
