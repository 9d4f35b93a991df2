"""Helpers for the API tests: test images and a real gunicorn server on loopback."""

from __future__ import annotations

import io
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from live_server import Server, start_serve, stop_server, wait_ready  # noqa: F401  (re-exported)
from PIL import Image

CLASSES = ["COVID", "Normal", "Viral Pneumonia"]
MODEL_NAME = "xray-classifier"


def image_bytes(size: tuple[int, int] = (80, 60), mode: str = "L", fmt: str = "PNG", seed: int = 0) -> bytes:
    """A random image encoded as FMT."""
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, body, CRC (for PNGs written by hand, header fields of any value)."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def start_server(model_dir: Path, folder: Path, workers: int = 2, threads: int = 4) -> Server:
    """`mlops serve` (real gunicorn) on a free loopback port; waits until /readyz answers."""
    return start_serve(str(model_dir / "model.keras"), folder, workers, threads)


@contextmanager
def in_thread(app) -> Iterator[str]:
    """APP served by werkzeug on a free loopback port in a background thread: its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
