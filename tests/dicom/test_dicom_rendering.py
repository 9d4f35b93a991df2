"""core.dicom on real DICOM files: the standard's rendering, MONOCHROME1, compressed syntaxes, bad files."""

from __future__ import annotations

import numpy as np
import pytest
from dicom_files import (
    COLOR,
    JPEG_12_BIT,
    JPEG_LOSSLESS,
    MULTI_FRAME,
    NO_PIXELS,
    SAME_PIXELS_AS_WINDOWED,
    UNWINDOWED,
    WINDOWED,
    dicom_bytes,
    dicom_path,
    monochrome1_copy,
    reference_rendering,
)

from core.dicom import (
    DicomError,
    DicomTooLarge,
    DicomUnsupported,
    as_encoded_image,
    is_dicom,
    render_dicom,
)


@pytest.mark.parametrize("name", [WINDOWED, UNWINDOWED])
def test_rendering_follows_the_standard(name):
    rendered = render_dicom(dicom_bytes(name))
    assert rendered.dtype == np.uint8 and rendered.ndim == 2
    np.testing.assert_array_equal(rendered, reference_rendering(dicom_path(name)))


def test_window_agrees_with_pydicoms_own_voi_lut():
    """A second, independent implementation: pydicom's apply_voi_lut, mapped from its output range."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    ds = pydicom.dcmread(dicom_path(WINDOWED))
    values = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)
    low, high = -(2 ** (ds.BitsStored - 1)), 2 ** (ds.BitsStored - 1) - 1  # signed: pydicom's y range
    theirs = np.rint((values - low) / (high - low) * 255)
    ours = render_dicom(dicom_bytes(WINDOWED)).astype(np.float64)
    assert np.abs(ours - theirs).max() <= 1
    assert 0 < ours.mean() < 255  # the window shows the anatomy, not a blank frame


def test_no_window_stretches_the_image_over_0_to_255():
    rendered = render_dicom(dicom_bytes(UNWINDOWED))
    assert rendered.min() == 0 and rendered.max() == 255


def test_monochrome1_is_inverted(tmp_path):
    """MONOCHROME1 stores 0 as white: the same pixels relabelled render as the exact negative."""
    inverted = render_dicom(monochrome1_copy(WINDOWED, tmp_path / "m1.dcm").read_bytes())
    np.testing.assert_array_equal(inverted, 255 - render_dicom(dicom_bytes(WINDOWED)))


@pytest.mark.parametrize("name", SAME_PIXELS_AS_WINDOWED)
def test_lossless_syntaxes_render_like_the_uncompressed_file(name):
    """RLE, JPEG 2000 lossless and big-endian copies of one image render identically."""
    np.testing.assert_array_equal(render_dicom(dicom_bytes(name)), render_dicom(dicom_bytes(WINDOWED)))


def test_colour_dicom_renders_rgb():
    rendered = render_dicom(dicom_bytes(COLOR))
    assert rendered.shape == (100, 100, 3) and rendered.dtype == np.uint8


@pytest.mark.parametrize(
    ("name", "words"),
    [
        (JPEG_LOSSLESS, ["JPEG Lossless", "1.2.840.10008.1.2.4.70", "cannot decode"]),
        (JPEG_12_BIT, ["JPEG Extended", "1.2.840.10008.1.2.4.51", "12-bit"]),
    ],
)
def test_undecodable_transfer_syntax_is_named(name, words):
    with pytest.raises(DicomUnsupported) as caught:
        render_dicom(dicom_bytes(name), what="scan.dcm")
    message = str(caught.value)
    assert message.startswith("scan.dcm uses transfer syntax")
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (lambda: dicom_bytes(NO_PIXELS), ["no Pixel Data"]),
        (lambda: dicom_bytes(MULTI_FRAME), ["15 frames"]),
        (lambda: dicom_bytes(WINDOWED)[:2000], ["damaged or truncated pixel data"]),
        (lambda: b"\0" * 128 + b"DICM" + b"\xff" * 64, ["holds no image"]),
    ],
)
def test_bad_dicom_files_say_why(data, words):
    with pytest.raises(DicomError) as caught:
        render_dicom(data())
    assert not isinstance(caught.value, DicomUnsupported)
    for word in words:
        assert word in str(caught.value)


def test_pixel_limit_is_checked_on_the_header():
    with pytest.raises(DicomTooLarge, match="64x64 = 4096 pixels; the limit is 4000"):
        render_dicom(dicom_bytes(WINDOWED), max_pixels=4000)
    assert render_dicom(dicom_bytes(WINDOWED), max_pixels=4096).shape == (64, 64)


def test_only_dicom_is_converted():
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 200
    assert not is_dicom(png) and as_encoded_image(png) is png
    converted = as_encoded_image(dicom_bytes(WINDOWED))
    assert is_dicom(dicom_bytes(WINDOWED)) and converted.startswith(b"\x89PNG")
