"""Check uploaded bytes before TensorFlow sees them: is it an image we decode, and is it small enough?"""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

# What mlops.preprocessing decodes for every model, as PIL names them. Not GIF or BMP: TensorFlow's
# decoders for those refuse channels=1, which grayscale (X-ray) models ask for.
SUPPORTED_FORMATS = ("PNG", "JPEG")


class ImageRejected(ValueError):
    """An upload we refuse, with the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def check_image(data: bytes, max_pixels: int, what: str = "the upload") -> tuple[str, int, int]:
    """(format, width, height) from the header; ImageRejected unless a PNG/JPEG within MAX_PIXELS.

    PIL's `Image.open` is lazy: it reads the header only, so a decompression bomb is refused
    before a single pixel is decoded.
    """
    if not data:
        raise ImageRejected(f"{what} is empty; send a PNG or JPEG image")
    with warnings.catch_warnings():
        # Our own limit below decides; PIL's warning would only be noise (or an error under -W error).
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                fmt, (width, height) = image.format, image.size
        except Image.DecompressionBombError as exc:
            raise ImageRejected(f"{what} is too large to decode: {exc}", 413) from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            raise ImageRejected(f"{what} is not an image we can read; send a PNG or JPEG image") from None
    if fmt not in SUPPORTED_FORMATS:
        raise ImageRejected(
            f"{what} is a {fmt} image; supported formats are {', '.join(SUPPORTED_FORMATS)}", 415
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
