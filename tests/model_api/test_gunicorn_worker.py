"""The serving worker (model_api/gunicorn_worker.py) under real gunicorn with ONE thread: a kept-alive
connection's next request is served on the thread that answered, but never at another's expense."""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import pytest
from api_testlib import Server, image_bytes
from live_server import start_serve, stop_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One worker with one thread: any connection holding the thread would stall every other."""
    running = start_serve(
        str(model_dir / "model.keras"), tmp_path_factory.mktemp("worker"), workers=1, threads=1
    )
    try:
        yield running
    finally:
        stop_server(running)


def connect(server: Server) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", urlsplit(server.url).port, timeout=30)


def get(conn: http.client.HTTPConnection, path: str = "/healthz") -> tuple[int, bytes]:
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read()


def test_the_server_runs_the_lingering_worker(server: Server) -> None:
    assert "LingeringThreadWorker" in server.log.read_text()  # gunicorn logs "Using worker: ..."


def read_responses(reader: BinaryIO, count: int) -> list[bytes]:
    """COUNT HTTP/1.1 responses off a socket file: each one's body (asserting 200)."""
    bodies = []
    for _ in range(count):
        status = reader.readline()
        assert b" 200 " in status, status
        length = 0
        while (line := reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        bodies.append(reader.read(length))
    return bodies


def test_a_busy_connection_does_not_starve_another(server: Server) -> None:
    """Client A pipelines many requests (its next one is always there, so the only thread could serve
    A to the end); client B, arriving meanwhile, must be answered long before A is done: the worker
    serves a connection's next request itself only while nobody else waits for the thread."""
    count = 8000
    port = urlsplit(server.url).port
    first, done = threading.Event(), []

    def read_all(reader: BinaryIO) -> None:
        read_responses(reader, 1)
        first.set()
        read_responses(reader, count - 1)
        done.append(time.perf_counter())

    with socket.create_connection(("127.0.0.1", port), timeout=120) as busy:
        started = time.perf_counter()
        reader = threading.Thread(target=read_all, args=(busy.makefile("rb"),))
        reader.start()
        sender = threading.Thread(
            target=busy.sendall, args=(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n" * count,)
        )
        sender.start()
        assert first.wait(60), "A was never answered"
        other = connect(server)
        asked = time.perf_counter()
        assert get(other)[0] == 200
        waited = time.perf_counter() - asked
        other.close()
        sender.join(120)
        reader.join(120)
    assert done, "A's responses did not all come"
    busy_s = done[0] - started
    assert busy_s > 0.5, f"A's {count} requests took only {busy_s:.2f} s: too few to tell"
    assert waited < busy_s / 5, f"B waited {waited:.2f} s of A's {busy_s:.2f} s: A held the thread"


def test_an_idle_keepalive_connection_does_not_hold_the_thread(server: Server) -> None:
    idle = connect(server)
    assert get(idle)[0] == 200  # now kept alive and silent
    try:
        other = connect(server)
        started = time.perf_counter()
        assert get(other, "/readyz")[0] == 200
        assert time.perf_counter() - started < 2.0
        other.close()
        assert get(idle)[0] == 200  # and the idle one still works afterwards
    finally:
        idle.close()


def test_pipelined_requests_on_one_connection_are_all_answered(server: Server) -> None:
    """Two requests in one write: the second is read ahead with the first and served in turn."""
    image = image_bytes(seed=3)
    head = f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {len(image)}"
    one = f"{head}\r\n\r\n".encode() + image
    with socket.create_connection(("127.0.0.1", urlsplit(server.url).port), timeout=30) as sock:
        sock.sendall(one + one)
        for body in read_responses(sock.makefile("rb"), 2):
            assert json.loads(body)["label"]


def test_many_sequential_requests_on_one_connection(server: Server) -> None:
    conn = connect(server)
    try:
        image = image_bytes(seed=4)
        labels = set()
        for _ in range(50):
            conn.request("POST", "/predict", body=image, headers={"Content-Type": "image/png"})
            response = conn.getresponse()
            assert response.status == 200
            labels.add(json.loads(response.read())["label"])
        assert len(labels) == 1  # the same image, the same answer, on one connection throughout
    finally:
        conn.close()


def test_a_descriptor_above_1023_is_waited_on() -> None:
    """A busy worker's sockets pass descriptor 1023, where select.select refuses to wait on them."""
    import io
    import resource
    from concurrent.futures import ThreadPoolExecutor
    from types import SimpleNamespace

    from model_api.gunicorn_worker import LingeringThreadWorker

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"the descriptor limit ({hard}) does not reach 2048")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    ours, theirs = socket.socketpair()
    high = socket.socket(fileno=os.dup2(ours.fileno(), 2000))
    pool = ThreadPoolExecutor(1)
    worker = SimpleNamespace(tpool=pool)
    conn = SimpleNamespace(sock=high, parser=SimpleNamespace(unreader=SimpleNamespace(buf=io.BytesIO())))
    try:
        assert not LingeringThreadWorker._next_request_soon(worker, conn)  # nothing sent: the linger ends
        theirs.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert LingeringThreadWorker._next_request_soon(worker, conn)
    finally:
        for sock in (high, ours, theirs):
            sock.close()
        pool.shutdown()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
