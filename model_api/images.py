"""Check uploaded bytes before TensorFlow sees them: is it an image we decode, and is it small enough?"""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from core.dicom import DicomError, DicomTooLarge, DicomUnsupported, dicom_to_png, is_dicom

# What core.preprocessing decodes for every model, as PIL names them. Not GIF or BMP: TensorFlow's
# decoders for those refuse channels=1, which grayscale (X-ray) models ask for. DICOM is rendered to
# PNG first (core.dicom).
SUPPORTED_FORMATS = ("PNG", "JPEG")


class ImageRejected(ValueError):
    """An upload we refuse, with the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def prepare_image(
    data: bytes, max_pixels: int, what: str = "the upload"
) -> tuple[bytes, tuple[str, int, int]]:
    """The bytes the serving graph decodes and their (format, width, height).

    A checked PNG/JPEG goes as is; a DICOM file is rendered to PNG (its format stays "DICOM").
    """
    if not is_dicom(data):
        return data, check_image(data, max_pixels, what)
    try:
        png = dicom_to_png(data, max_pixels, what)
    except DicomTooLarge as exc:
        raise ImageRejected(str(exc), 413) from None
    except DicomUnsupported as exc:
        raise ImageRejected(str(exc), 415) from None
    except DicomError as exc:
        raise ImageRejected(str(exc)) from None
    _, width, height = check_image(png, max_pixels, what)
    return png, ("DICOM", width, height)


def check_image(data: bytes, max_pixels: int, what: str = "the upload") -> tuple[str, int, int]:
    """(format, width, height) from the header; ImageRejected unless a PNG/JPEG within MAX_PIXELS.

    PIL's `Image.open` is lazy: it reads the header only, so a decompression bomb is refused
    before a single pixel is decoded.
    """
    if not data:
        raise ImageRejected(f"{what} is empty; send a PNG, JPEG or DICOM image")
    with warnings.catch_warnings():
        # Our own limit below decides; PIL's warning would only be noise (or an error under -W error).
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        # PIL warns about damaged metadata (e.g. "Corrupt EXIF data" in a TIFF header, which some
        # DICOM preambles are); the checks below decide, a warning must not become an error.
        warnings.simplefilter("ignore", UserWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                fmt, (width, height) = image.format, image.size
        except Image.DecompressionBombError as exc:
            raise ImageRejected(f"{what} is too large to decode: {exc}", 413) from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            raise ImageRejected(
                f"{what} is not an image we can read; send a PNG, JPEG or DICOM image"
            ) from None
    if fmt not in SUPPORTED_FORMATS:
        raise ImageRejected(
            f"{what} is a {fmt} image; supported formats are {', '.join(SUPPORTED_FORMATS)} and DICOM", 415
        )
    if width <= 0 or height <= 0:
        raise ImageRejected(f"{what} has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageRejected(
            f"{what} is {width}x{height} = {width * height} pixels; the limit is {max_pixels} "
            "(resize it first)",
            413,
        )
    return fmt, width, height
