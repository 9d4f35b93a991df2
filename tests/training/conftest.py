"""Fixtures for the training tests: tiny datasets written on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_png(path: Path, seed: int, size: int = 16, mode: str = "L") -> bytes:
    """A random PNG at path; returns its bytes."""
    rng = np.random.default_rng(seed)
    shape = (size, size) if mode == "L" else (size, size, len(mode))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return path.read_bytes()


@pytest.fixture
def png():
    """write_png(path, seed, size=16, mode="L") -> bytes."""
    return write_png


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """Three classes of random 16x16 PNGs, 20 each."""
    root = tmp_path / "tiny"
    for c, label in enumerate(("a", "b", "c")):
        for i in range(20):
            write_png(root / label / f"{i}.png", seed=c * 1000 + i)
    return root
