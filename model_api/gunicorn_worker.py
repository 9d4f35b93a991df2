"""gunicorn's gthread worker, answering a kept-alive connection's next request on the same thread.

gthread hands every kept-alive connection back to its main thread after each response: the pool
thread queues a callback and writes to a pipe, the main thread wakes, registers the socket with its
poller, wakes again when the next request arrives and submits the connection to the pool, whose
thread wakes in turn. For a client that sends its next request at once (every SDK with a
connection pool) that is two thread hand-offs and four system calls per request: serving the next
request in place takes p50 to 0.83-0.86x on loopback (benchmarks/bench_api.py).

This worker lets the thread that answered wait up to `LINGER_S` for the next request on the same
connection and serve it directly, but only while no other connection is waiting for a thread:
with more connections than threads it behaves exactly as gthread, so an idle client can hold a
thread for at most LINGER_S and never while someone else queues.
"""

from __future__ import annotations

import select
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

LINGER_S = 0.002  # a client's next request on loopback follows its response within ~0.3 ms


class LingeringThreadWorker(ThreadWorker):
    """gthread, plus: serve a kept-alive connection's next request on the thread that answered."""

    def handle(self, conn: Any) -> Any:
        keep = super().handle(conn)
        while keep is True and self.alive and self._next_request_soon(conn):
            keep = super().handle(conn)
        return keep

    def _next_request_soon(self, conn: Any) -> bool:
        """Whether the connection's next request is here (or comes within LINGER_S) while no other
        connection waits for a thread."""
        # Others waiting come first: gthread's finish_request then queues this connection behind them
        # (at once when a pipelined request is already read ahead, else when its socket is readable).
        # ThreadPoolExecutor's queue is private (stable since Python 3.2); without it, act as gthread.
        queue = getattr(self.tpool, "_work_queue", None)
        if queue is None or queue.qsize() > 0:
            return False
        if conn.parser.unreader.buf.getvalue():
            return True  # pipelined, or read ahead by a body drain
        # poll, not select: select refuses descriptors above 1023, which a busy worker reaches.
        poller = select.poll()
        poller.register(conn.sock, select.POLLIN)
        return bool(poller.poll(LINGER_S * 1000))
