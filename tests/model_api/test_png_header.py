"""The PNG header read with struct (images.png_header): what the spec says, what PIL says, and no more."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from api_testlib import png_chunk
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from model_api.images import ImageRejected, check_image, declared_size, png_header

# PNG spec 11.2.2: samples per pixel of each colour type, and the bit depths each allows.
SPEC = {0: (1, [1, 2, 4, 8, 16]), 2: (3, [8, 16]), 3: (1, [1, 2, 4, 8]), 4: (2, [8, 16]), 6: (4, [8, 16])}


def png(
    width: int, height: int, depth: int, colour: int, interlace: int = 0, *, ihdr_crc: int | None = None
) -> bytes:
    """A complete PNG of zero samples, written by hand so every depth and colour type can be made."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    head = png_chunk(b"IHDR", ihdr)
    if ihdr_crc is not None:
        head = head[:-4] + struct.pack(">I", ihdr_crc)
    samples = SPEC.get(colour, (1, []))[0]
    row = 1 + (width * samples * depth + 7) // 8  # filter byte + packed samples
    palette = png_chunk(b"PLTE", bytes(3 * 4)) if colour == 3 else b""
    idat = png_chunk(b"IDAT", zlib.compress(bytes(row * height)))
    return b"\x89PNG\r\n\x1a\n" + head + palette + idat + png_chunk(b"IEND", b"")


ALL_VALID = [(depth, colour) for colour, (_, depths) in SPEC.items() for depth in depths]


@pytest.mark.parametrize(("depth", "colour"), ALL_VALID)
def test_every_valid_depth_and_colour_type_reads_as_the_spec_says_and_as_pil_sees_it(depth, colour):
    data = png(7, 5, depth, colour)
    assert png_header(data) == (7, 5, SPEC[colour][0], 2 if depth == 16 else 1)
    with Image.open(io.BytesIO(data)) as image:  # the oracle: PIL reads the same file the same size
        assert (image.format, image.size) == ("PNG", (7, 5))
        image.load()  # and it is a whole, decodable PNG, not just a header


def test_an_interlaced_png_is_read_too():
    assert png_header(png(9, 3, 8, 0, interlace=1)) == (9, 3, 1, 1)


@pytest.mark.parametrize(
    ("why", "data"),
    [
        ("bad IHDR checksum", png(7, 5, 8, 0, ihdr_crc=0)),
        ("depth 16 is not allowed for a palette", png(7, 5, 16, 3)),
        ("depth 4 is not allowed for RGB", png(7, 5, 4, 2)),
        ("colour type 5 does not exist", png(7, 5, 8, 5)),
        ("interlace method 2 does not exist", png(7, 5, 8, 0, interlace=2)),
        ("zero width", png(0, 5, 8, 0)),
        ("width of 2**31", png(2**31, 1, 8, 0)),
    ],
)
def test_a_header_the_spec_forbids_is_left_to_pil_and_the_api_refuses_it(client, why, data):
    assert png_header(data) is None, why
    response = client.post("/predict", data=data, content_type="image/png")
    assert 400 <= response.status_code < 500 and response.json["error"], why
    assert client.post("/predict", data=png(7, 5, 8, 0), content_type="image/png").status_code == 200


def test_not_a_png_or_cut_short_is_none():
    whole = png(7, 5, 8, 0)
    jpeg = io.BytesIO()
    Image.new("L", (7, 5)).save(jpeg, "JPEG")
    assert png_header(jpeg.getvalue()) is None
    for cut in (0, 8, 12, 20, 32):
        assert png_header(whole[:cut]) is None, cut
    assert png_header(whole[:33]) == (7, 5, 1, 1)  # the header is all it needs


def test_a_huge_declared_png_is_refused_from_its_header_with_the_decode_budget_of_the_file():
    # 16-bit RGBA: 8 bytes per pixel before the decoder converts to 8 bits.
    declared = declared_size(png(3000, 2000, 16, 6), 10**8)
    assert (declared.fmt, declared.pixels, declared.decoded_bytes) == ("PNG", 6_000_000, 48_000_000)
    with pytest.raises(ImageRejected) as refused:
        check_image(png(3000, 2000, 16, 6), 5_999_999)
    assert refused.value.status == 413 and "3000x2000" in str(refused.value)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 32), st.integers(0, 255))
def test_any_one_byte_change_to_the_header_reads_as_pil_reads_it_or_not_at_all(position, value):
    data = bytearray(png(7, 5, 8, 2))
    data[position] = value
    read = png_header(bytes(data))
    if read is None:
        return
    with Image.open(io.BytesIO(bytes(data))) as image:
        assert image.size == read[:2]
