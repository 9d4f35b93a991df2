"""Realistic shifts of X-ray images: what a changed scanner or acquisition does to the same patients."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image


def _png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, "PNG")
    return out.getvalue()


def exposure(pixels: np.ndarray, rng: np.random.Generator) -> bytes:
    """Over-exposure: a brighter, lower-contrast detector response (gain 0.8, +70 offset)."""
    return _png(pixels.astype(np.float64) * 0.8 + 70)


def noise(pixels: np.ndarray, rng: np.random.Generator) -> bytes:
    """A noisier sensor (or a lower dose): extra Gaussian noise, sigma 25 of 255."""
    return _png(pixels.astype(np.float64) + rng.normal(0, 25, pixels.shape))


def inverted(pixels: np.ndarray, rng: np.random.Generator) -> bytes:
    """Inverted polarity: bones dark, air bright (a viewer or DICOM photometric setting)."""
    return _png(255.0 - pixels)


def resolution(pixels: np.ndarray, rng: np.random.Generator) -> bytes:
    """Another scanner's resolution: the same view delivered at 256x256 instead of 64x64."""
    return _png(np.asarray(Image.fromarray(pixels).resize((256, 256), Image.Resampling.BICUBIC)))


SHIFTS: dict[str, Callable[[np.ndarray, np.random.Generator], bytes]] = {
    "exposure": exposure,
    "noise": noise,
    "inverted polarity": inverted,
    "scanner resolution": resolution,
}


def shifted(paths: list[Path], shift: str, seed: int = 0) -> list[bytes]:
    """The images at PATHS with SHIFT applied."""
    rng = np.random.default_rng(seed)
    return [SHIFTS[shift](np.asarray(Image.open(p).convert("L")), rng) for p in paths]


def rotated(paths: list[Path]) -> list[bytes]:
    """The images at PATHS turned 90° (a detector mounted or exported the other way round)."""
    return [_png(np.rot90(np.asarray(Image.open(p).convert("L")))) for p in paths]


def darkened(paths: list[Path]) -> list[bytes]:
    """The images at PATHS under-exposed: half the signal (a lower dose or a detector's gain set wrong)."""
    return [_png(np.asarray(Image.open(p).convert("L")).astype(np.float64) * 0.5) for p in paths]
