"""DICOM in: a Part 10 file rendered to the 8-bit PNG that the one preprocessing function decodes.

Rendering follows DICOM PS3.3 C.11: stored values → Modality LUT (rescale slope / intercept) →
VOI LUT or window (center / width, the first of several) → 0..255. MONOCHROME1 (0 is white) is
inverted, so bright means dense in every rendering. A file with no VOI is stretched over its own
range. The API, dataset loading and the model tests all call `as_encoded_image`, so a DICOM and its
PNG rendering reach `core.preprocessing.preprocess_image` as the same bytes.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.errors import MlopsError

if TYPE_CHECKING:  # pydicom is imported where it is used (the API starts without it)
    from pydicom.dataset import Dataset

MAGIC = b"DICM"  # PS3.10 7.1: a 128-byte preamble, then "DICM"
MAGIC_OFFSET = 128
DICOM_SUFFIXES = (".dcm", ".dicom")
MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
COLOR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT")


class DicomError(MlopsError):
    """A DICOM file that holds no image we can render."""


class DicomUnsupported(DicomError):
    """Pixel data this installation cannot decode (a compressed transfer syntax, a colour model)."""


class DicomTooLarge(DicomError):
    """An image whose header declares more pixels than the limit."""


@dataclass(frozen=True)
class DicomSize:
    """What a DICOM header says its pixel data decodes to (nothing decoded to learn it)."""

    columns: int
    rows: int
    frames: int
    samples: int  # SamplesPerPixel
    bits_allocated: int

    @property
    def pixels(self) -> int:
        """Pixels over every frame."""
        return self.columns * self.rows * self.frames

    @property
    def decoded_bytes(self) -> int:
        """Bytes of the decoded pixel array: pixels x samples x whole bytes per sample."""
        return self.pixels * self.samples * ((self.bits_allocated + 7) // 8)


def is_dicom(data: bytes) -> bool:
    """Whether DATA is a DICOM Part 10 file (the 'DICM' marker after the preamble)."""
    return data[MAGIC_OFFSET : MAGIC_OFFSET + 4] == MAGIC


def _read(data: bytes) -> Dataset:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DicomError(f"is not a readable DICOM file: {str(exc).splitlines()[0][:200]}") from None


def _syntax(ds: Dataset) -> str:
    uid = ds.file_meta.get("TransferSyntaxUID")
    return f"{uid.name} ({uid})" if uid is not None else "an unknown transfer syntax"


def _size(ds: Dataset, max_pixels: int | None) -> DicomSize:
    """The decoded size the header declares, checked against MAX_PIXELS per frame."""
    if "PixelData" not in ds:
        raise DicomError("holds no image (no Pixel Data element): send a radiograph, not a report or plan")
    rows, columns = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    if rows <= 0 or columns <= 0:
        raise DicomError(f"declares no pixels ({columns}x{rows})")
    # Checked on the header, before decoding: compressed pixel data can expand enormously.
    if max_pixels is not None and rows * columns > max_pixels:
        raise DicomTooLarge(
            f"is {columns}x{rows} = {rows * columns} pixels; the limit is {max_pixels} (resize it first)"
        )
    frames, samples = int(ds.get("NumberOfFrames") or 1), int(ds.get("SamplesPerPixel") or 1)
    # Absent, the widest a radiograph uses: the size is an upper bound, never an underestimate.
    bits = int(ds.get("BitsAllocated") or 16)
    if frames < 1 or samples < 1 or not 1 <= bits <= 64:
        raise DicomError(
            f"declares an impossible pixel layout ({frames} frames, {samples} samples per pixel, "
            f"{bits} bits allocated)"
        )
    return DicomSize(columns, rows, frames, samples, bits)


def dicom_size(data: bytes, max_pixels: int | None = None, what: str = "the DICOM file") -> DicomSize:
    """What DATA's header says its pixels decode to; DicomError (or DicomTooLarge) names WHAT."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # as render_dicom: tolerated oddities
            return _size(_read(data), max_pixels)
    except DicomError as exc:
        raise type(exc)(f"{what} {exc}") from None
    except Exception as exc:  # untrusted bytes through pydicom: see render_dicom
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        raise DicomError(f"{what} has an unreadable header ({type(exc).__name__}: {reason})") from None


def _pixels(ds: Dataset, max_pixels: int | None) -> np.ndarray:
    """The stored pixel values, after checking what the header promises."""
    from pydicom.pixels import get_decoder

    frames = _size(ds, max_pixels).frames
    if frames != 1:
        raise DicomError(f"has {frames} frames; send a single-frame image (one radiograph)")
    interpretation = str(ds.get("PhotometricInterpretation", ""))
    if interpretation not in MONOCHROME + COLOR:
        raise DicomUnsupported(
            f"uses photometric interpretation {interpretation or 'none'}; "
            f"supported: {', '.join(MONOCHROME + COLOR)}"
        )
    uid = ds.file_meta.get("TransferSyntaxUID")
    try:
        available = uid is not None and get_decoder(uid).is_available
    except NotImplementedError:
        available = False
    if not available:
        raise DicomUnsupported(
            f"uses transfer syntax {_syntax(ds)}, which this server cannot decode; "
            "send it uncompressed (Explicit VR Little Endian), RLE, JPEG baseline or JPEG 2000"
        )
    try:
        return ds.pixel_array
    except (RuntimeError, NotImplementedError, ValueError, AttributeError) as exc:
        reason = str(exc).strip().splitlines()[-1].strip()[:200]
        if not uid.is_compressed:
            raise DicomError(f"has damaged or truncated pixel data: {reason}") from None
        # A decoder exists for the syntax but not for this variant (e.g. 12-bit JPEG Extended).
        raise DicomUnsupported(
            f"uses transfer syntax {_syntax(ds)}, which failed to decode: {reason}"
        ) from None


def _window(values: np.ndarray, ds: Dataset) -> np.ndarray | None:
    """Window center/width (PS3.3 C.11.2.1.2) mapped to [0, 1], or None when the file has none."""
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    center, width = (ds[key].value for key in ("WindowCenter", "WindowWidth"))
    center = float(center[0] if ds["WindowCenter"].VM > 1 else center)
    width = float(width[0] if ds["WindowWidth"].VM > 1 else width)
    function = str(ds.get("VOILUTFunction", "LINEAR")).upper()
    if function == "SIGMOID" and width > 0:
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT" and width > 0:
        return np.clip((values - center) / width + 0.5, 0.0, 1.0)
    if function == "LINEAR" and width >= 1:
        return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)
    return None  # an invalid window is no window: the full range still shows the image


def _monochrome(ds: Dataset, stored: np.ndarray) -> np.ndarray:
    """Stored monochrome values → [0, 1] through the Modality and VOI transforms."""
    from pydicom.pixels import apply_modality_lut, apply_voi

    values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    if ds.get("VOILUTSequence"):
        lut = apply_voi(values, ds, index=0)
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        # `2**bits` is typed Any (int ** int may be a float): the array type is named here.
        scaled: np.ndarray = np.clip(np.asarray(lut, np.float64) / (2**bits - 1), 0.0, 1.0)
    else:
        windowed = _window(values, ds)
        if windowed is None:
            low, high = float(values.min()), float(values.max())
            windowed = (values - low) / (high - low) if high > low else np.zeros_like(values)
        scaled = windowed
    return scaled


def render_dicom(data: bytes, max_pixels: int | None = None, what: str = "the DICOM file") -> np.ndarray:
    """A DICOM file → uint8 pixels: [H, W] for monochrome, [H, W, 3] RGB for colour."""
    try:
        with warnings.catch_warnings():
            # pydicom warns about non-conformant values it tolerates (odd VRs, padding); so do we.
            warnings.simplefilter("ignore", UserWarning)
            ds = _read(data)
            stored = _pixels(ds, max_pixels)
            return _to_8_bit(ds, stored)
    except DicomError as exc:
        raise type(exc)(f"{what} {exc}") from None  # the messages above are predicates of WHAT
    except Exception as exc:
        # Untrusted bytes through a third-party parser fail in many ways (TypeError, IndexError,
        # struct.error ...); each one is a file we cannot render, never a crash of the caller.
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        raise DicomError(f"{what} could not be rendered ({type(exc).__name__}: {reason})") from None


def _to_8_bit(ds: Dataset, stored: np.ndarray) -> np.ndarray:
    if str(ds.PhotometricInterpretation) in MONOCHROME:
        image: np.ndarray = np.rint(_monochrome(ds, stored) * 255.0).astype(np.uint8)
        if ds.PhotometricInterpretation == "MONOCHROME1":
            image = 255 - image  # after quantizing, so MONOCHROME1 is the exact negative of MONOCHROME2
        return image
    # pydicom hands colour back as RGB (YBR converted); scale deeper samples down to 8 bits.
    bits = int(ds.get("BitsStored") or 8)
    if bits > 8:
        scale: float = 255.0 / (2**bits - 1)  # named: `2**bits` is typed Any
        return np.rint(stored.astype(np.float64) * scale).astype(np.uint8)
    return stored.astype(np.uint8)


def dicom_to_png(data: bytes, max_pixels: int | None = None, what: str = "the DICOM file") -> bytes:
    """A DICOM file → its 8-bit PNG rendering."""
    from PIL import Image

    out = io.BytesIO()
    # Level 1: the PNG is decoded again at once, so fast beats small.
    Image.fromarray(render_dicom(data, max_pixels, what)).save(out, format="PNG", compress_level=1)
    return out.getvalue()


def as_encoded_image(data: bytes, max_pixels: int | None = None, what: str = "the DICOM file") -> bytes:
    """What preprocessing decodes: a DICOM file rendered to PNG, any other bytes unchanged."""
    return dicom_to_png(data, max_pixels, what) if is_dicom(data) else data


def is_dicom_name(path: str | Path) -> bool:
    """Whether a file name says DICOM (.dcm, .dicom)."""
    return str(path).lower().endswith(DICOM_SUFFIXES)
