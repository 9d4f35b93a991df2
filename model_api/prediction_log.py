"""The prediction log's writer: records queue in memory and a background thread stores them in batches.

The request path only appends to a bounded buffer: it never waits on storage. When the buffer is full
(storage slow or down) the record is dropped and counted. A failed write is retried with backoff
while new records keep queueing (and, once the queue is full, dropping). `close` flushes what is
queued within a deadline: gunicorn's `worker_exit` hook calls it on a graceful stop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("model_api.prediction_log")

Sink = Callable[[Sequence[dict[str, Any]]], object]
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
    """A bounded buffer of records and a daemon thread that hands them to SINK in batches.

    The thread sleeps until a batch is full, the flush interval passes, or close() is called: it
    never wakes per record (a wake-up per prediction cost more CPU than describing the image).
    """

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
        self._queue_size = queue_size
        self._on_written, self._on_dropped, self._on_failure = on_written, on_dropped, on_failure
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()  # guards _pending, _closing and the counters
        self._wake = threading.Event()  # a full batch or close(): write now
        self._stopped = threading.Event()  # close(): cut retries short
        self._closing = False
        self._lost_in_writer = 0  # records the writer gave up on (also counted as dropped)
        self.stats = WriterStats()
        self._thread = threading.Thread(target=self._run, name=f"mlops-{name}-writer", daemon=True)
        self._thread.start()

    def put(self, record: dict[str, Any]) -> bool:
        """Queue one record without blocking; False (and counted) when the buffer is full or closed."""
        with self._lock:
            if self._closing or len(self._pending) >= self._queue_size:
                accepted, full = False, False
                self.stats.dropped += 1
            else:
                self._pending.append(record)
                self.stats.queued += 1
                accepted, full = True, len(self._pending) >= self._batch_size
        if not accepted:
            self._on_dropped(1)
        elif full:
            self._wake.set()
        return accepted

    def close(self, timeout: float) -> int:
        """Flush what is queued within TIMEOUT seconds and stop; return how many records were lost."""
        with self._lock:
            self._closing = True
        self._stopped.set()
        self._wake.set()
        self._thread.join(timeout)
        with self._lock:
            lost = self.stats.queued - self.stats.written - self._lost_in_writer
        if self._thread.is_alive() and lost:
            log.warning("%s log: %d records not stored within %.1f s at shutdown", self.name, lost, timeout)
        return max(lost, 0)

    def _drop(self, count: int) -> None:
        with self._lock:
            self.stats.dropped += count
            self._lost_in_writer += count
        self._on_dropped(count)

    def _run(self) -> None:
        while True:
            woken = self._wake.wait(self._interval)
            self._wake.clear()
            with self._lock:
                closing = self._closing
                # Woken by a full batch: take whole batches, the rest waits to fill up or for the interval.
                take = len(self._pending)
                if woken and not closing:
                    take -= take % self._batch_size
                batch, self._pending = self._pending[:take], self._pending[take:]
            for start in range(0, len(batch), self._batch_size):
                self._store(batch[start : start + self._batch_size], final=closing)
            if closing:
                with self._lock:
                    if not self._pending:
                        return

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
                    self._drop(len(batch))
                    return
                final = self._stopped.wait(backoff)  # woken by close(): one last try, then give up
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                continue
            with self._lock:
                self.stats.written += len(batch)
                self.stats.batches.append(len(batch))
            self._on_written(len(batch))
            return
