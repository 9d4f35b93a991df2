"""Real DICOM inputs for tests: pydicom's bundled test files (no patient data), and a reference rendering.

`reference_rendering` is written from the DICOM standard (PS3.3 C.11.2.1.2.1, linear window;
no VOI: the image's own range) with plain numpy, independently of core.dicom, so a test can
check the implementation against it rather than against itself.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

# Bundled in pydicom's wheel (the rest of its test files are downloaded, and nothing is reachable here).
WINDOWED = "MR_small.dcm"  # MONOCHROME2, 64x64, signed 16-bit, window 600 / 1600
UNWINDOWED = "CT_small.dcm"  # MONOCHROME2, 128x128, rescale slope / intercept, no window
SAME_PIXELS_AS_WINDOWED = ("MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_bigendian.dcm")
JPEG_LOSSLESS = "SC_rgb_jpeg_gdcm.dcm"  # JPEG Lossless (Process 14): no decoder installed → 415
JPEG_12_BIT = "JPEG-lossy.dcm"  # JPEG Extended 12-bit: Pillow's decoder refuses it → 415
COLOR = "SC_rgb_jpeg_dcmtk.dcm"  # YBR_FULL JPEG baseline, 100x100
NO_PIXELS = "rtplan.dcm"
MULTI_FRAME = "rtdose.dcm"


def dicom_path(name: str) -> Path:
    """The path of one of pydicom's bundled test files."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    assert path, f"{name} is not bundled with this pydicom"
    return Path(path)


def dicom_bytes(name: str) -> bytes:
    """The bytes of one of pydicom's bundled test files."""
    return dicom_path(name).read_bytes()


def monochrome1_copy(name: str, out: Path) -> Path:
    """A copy of a MONOCHROME2 file relabelled MONOCHROME1 (0 = white), written to OUT."""
    import pydicom

    ds = pydicom.dcmread(dicom_path(name))
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(out, enforce_file_format=True)
    return out


def reference_rendering(path: Path) -> np.ndarray:
    """8-bit rendering per the standard: rescale, linear window (or full range), MONOCHROME1 inverted."""
    import pydicom

    ds = pydicom.dcmread(path)
    x = ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(
        ds.get("RescaleIntercept", 0)
    )
    if "WindowCenter" in ds:
        c, w = float(ds.WindowCenter), float(ds.WindowWidth)
        low, high = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
        y = np.where(x <= low, 0.0, np.where(x > high, 1.0, (x - (c - 0.5)) / (w - 1) + 0.5))
    else:
        y = (x - x.min()) / (x.max() - x.min())
    out = np.rint(y * 255).astype(np.uint8)
    return 255 - out if ds.PhotometricInterpretation == "MONOCHROME1" else out


def png_of(pixels: np.ndarray) -> bytes:
    """PIXELS (uint8) encoded as PNG."""
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def flat_bomb(size: int = 6000, value: int = 1000) -> bytes:
    """A JPEG 2000 DICOM of a flat SIZE x SIZE 16-bit image: about 1 KiB that decodes to 2 x SIZE² bytes.

    The decompression bomb of issue 21; the codestream is Pillow's (OpenJPEG) lossless JPEG 2000,
    encapsulated as PS3.5 A.4 pixel data, so pydicom decodes it like any scanner's J2K file.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless, SecondaryCaptureImageStorage

    codestream = io.BytesIO()
    flat = Image.fromarray(np.full((size, size), value, np.uint16))
    flat.save(codestream, format="JPEG2000", irreversible=False, no_jp2=True)
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = JPEG2000Lossless
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[f"bomb-{size}-{value}"])
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = encapsulate([codestream.getvalue()])
    ds["PixelData"].VR = "OB"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
