"""Bad input gets a clear JSON 4xx, never a 500, and the app keeps serving."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from api_testlib import image_bytes, png_chunk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims WIDTHxHEIGHT, with a tiny (bogus) body: a decompression-bomb shape."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 100))


def assert_json_error(response, status: int, *words: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    message = response.json["error"]
    assert isinstance(message, str) and message
    for word in words:
        assert word in message


def assert_still_serving(client) -> None:
    response = client.post("/predict", data=image_bytes(seed=11), content_type="image/png")
    assert response.status_code == 200


def test_empty_body(client):
    assert_json_error(client.post("/predict", data=b"", content_type="image/png"), 400, "empty")
    assert_still_serving(client)


def test_non_image_bytes(client):
    assert_json_error(client.post("/predict", data=b"hello, world" * 10, content_type="image/png"), 400)
    assert_still_serving(client)


def test_truncated_png(client):
    data = image_bytes(size=(120, 100), seed=3)
    assert_json_error(client.post("/predict", data=data[: len(data) // 2], content_type="image/png"), 400)
    assert_still_serving(client)


def test_corrupt_png_body(client):
    data = bytearray(image_bytes(size=(120, 100), seed=4))
    data[60:200] = b"\xff" * 140  # header intact, compressed pixels garbage
    assert_json_error(client.post("/predict", data=bytes(data), content_type="image/png"), 400, "decoded")
    assert_still_serving(client)


def test_unsupported_image_format_is_415(client):
    data = image_bytes(fmt="BMP", mode="RGB")
    assert_json_error(client.post("/predict", data=data, content_type="image/bmp"), 415, "BMP", "PNG")


@pytest.mark.parametrize("size", [(20_000, 20_000), (1_000_000, 100)])
def test_decompression_bomb_is_refused_before_decoding(client, size):
    response = client.post("/predict", data=png_header_only(*size), content_type="image/png")
    assert_json_error(response, 413, "pixels")
    assert_still_serving(client)


def test_pil_bomb_error_is_413_too(client):
    # Over twice PIL's own limit PIL raises DecompressionBombError itself; still a 413.
    side = int((2 * Image.MAX_IMAGE_PIXELS) ** 0.5) + 10
    assert_json_error(
        client.post("/predict", data=png_header_only(side, side), content_type="image/png"), 413
    )


def test_pixel_limit_comes_from_config(bundle):
    from model_api import create_app

    small = create_app({"TESTING": True, "MODEL_BUNDLE": bundle, "MAX_IMAGE_PIXELS": 50 * 50})
    client = small.test_client()
    assert (
        client.post("/predict", data=image_bytes(size=(50, 50)), content_type="image/png").status_code == 200
    )
    assert_json_error(
        client.post("/predict", data=image_bytes(size=(51, 50)), content_type="image/png"), 413, "2500"
    )


def test_oversize_body_is_413(bundle):
    from model_api import create_app

    client = create_app({"TESTING": True, "MODEL_BUNDLE": bundle, "MAX_CONTENT_LENGTH": 1000}).test_client()
    big = image_bytes(size=(200, 200))
    assert len(big) > 1000
    assert_json_error(client.post("/predict", data=big, content_type="image/png"), 413, "1000 bytes")
    multipart = client.post("/predict", data={"file": (io.BytesIO(big), "x.png")})
    assert_json_error(multipart, 413)


@pytest.mark.parametrize(
    "content_type", ["application/json", "text/plain", "application/x-www-form-urlencoded"]
)
def test_wrong_content_type_is_415(client, content_type):
    response = client.post("/predict", data=image_bytes(), content_type=content_type)
    assert_json_error(response, 415, "Content-Type")


def test_multipart_without_file_field(client):
    response = client.post("/predict", data={"image": (io.BytesIO(image_bytes()), "x.png")})
    assert_json_error(response, 400, "'file'", "image")


def test_one_bad_file_among_several_is_named(client):
    files = [(io.BytesIO(image_bytes(seed=1)), "good.png"), (io.BytesIO(b"junk"), "bad.png")]
    assert_json_error(client.post("/predict", data={"file": files}), 400, "file 2", "bad.png")


def test_too_many_files_is_413(client, app):
    limit = app.config["MAX_BATCH"]
    files = [(io.BytesIO(image_bytes(size=(8, 8))), f"{i}.png") for i in range(limit + 1)]
    assert_json_error(client.post("/predict", data={"file": files}), 413, str(limit))


def test_unknown_path_and_method_are_json(client):
    assert_json_error(client.get("/nope"), 404)
    assert_json_error(client.get("/predict"), 405)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        st.binary(max_size=2048),
        # Valid PNG/JPEG prefixes followed by random bytes reach the decoder, not just the sniffer.
        st.builds(
            lambda head, tail: head + tail,
            st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"]),
            st.binary(max_size=512),
        ),
        st.builds(lambda cut, flip: _mangle(cut, flip), st.integers(0, 4000), st.integers(0, 255)),
    ),
    content_type=st.sampled_from(["image/png", "application/octet-stream", "image/jpeg"]),
)
def test_fuzz_random_bytes_never_500(client, data, content_type):
    response = client.post("/predict", data=data, content_type=content_type)
    assert response.status_code in (200, 400, 413, 415), response.get_data(as_text=True)
    assert response.is_json
    if response.status_code != 200:
        assert response.json["error"]


_VALID = {"png": image_bytes(size=(40, 30), seed=5), "jpeg": image_bytes(size=(40, 30), fmt="JPEG", seed=5)}


def _mangle(cut: int, flip: int) -> bytes:
    """A real image truncated at CUT with one byte XORed: near-valid input that reaches decoding."""
    source = _VALID["png"] if flip % 2 else _VALID["jpeg"]
    data = bytearray(source[: max(1, cut % len(source))])
    data[(cut * 7) % len(data)] ^= flip
    return bytes(data)
