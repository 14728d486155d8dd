"""Documented behaviour for inputs that are not 8-bit RGB (see rdcodec/image.py)."""

import io
import struct
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from rdcodec.cli import main
from rdcodec.errors import ImageError
from rdcodec.image import ConversionWarning, load_rgb8


def encoded(im, fmt="PNG", **kw):
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_rgb_passes_through(crop):
    np.testing.assert_array_equal(load_rgb8(encoded(Image.fromarray(crop))), crop)


def test_grayscale_is_replicated_without_warning(crop, recwarn):
    g = Image.fromarray(crop).convert("L")
    out = load_rgb8(encoded(g))
    assert out.shape == crop.shape and (out[..., 0] == np.asarray(g)).all() and (out[..., 1] == out[..., 2]).all()
    assert not [w for w in recwarn if w.category is ConversionWarning]


def test_palette_keeps_colours(crop):
    p = Image.fromarray(crop).quantize(16)
    out = load_rgb8(encoded(p))
    np.testing.assert_array_equal(out, np.asarray(p.convert("RGB")))


def test_alpha_is_discarded_with_warning(crop):
    rgba = Image.fromarray(crop).convert("RGBA")
    with pytest.warns(ConversionWarning, match="alpha"):
        out = load_rgb8(encoded(rgba))
    np.testing.assert_array_equal(out, crop)


def test_16_bit_is_reduced_with_warning():
    arr = (np.arange(64 * 32, dtype=np.uint16).reshape(32, 64) * 30)
    with pytest.warns(ConversionWarning, match="8 bits"):
        out = load_rgb8(encoded(Image.fromarray(arr)))
    assert out.dtype == np.uint8 and out.shape == (32, 64, 3)
    assert out[-1, -1, 0] == round(int(arr[-1, -1]) / 65535 * 255)


def test_cmyk_jpeg_is_converted(crop):
    with pytest.warns(ConversionWarning, match="CMYK"):
        out = load_rgb8(encoded(Image.fromarray(crop).convert("CMYK"), "JPEG"))
    assert out.shape == crop.shape


def test_exif_rotation_is_applied(crop):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    out = load_rgb8(encoded(Image.fromarray(crop), "JPEG", exif=exif, quality=95))
    assert out.shape == (crop.shape[1], crop.shape[0], 3)


def test_truncated_png_is_an_error(crop):
    with pytest.raises(ImageError):
        load_rgb8(encoded(Image.fromarray(crop))[:200])


def test_non_image_is_an_error():
    with pytest.raises(ImageError, match="not an image"):
        load_rgb8(b"just some text, not pixels")


def test_bad_arrays_are_errors():
    with pytest.raises(ImageError):
        load_rgb8(np.zeros((4, 4), np.uint8))
    with pytest.raises(ImageError):
        load_rgb8(np.zeros((4, 4, 3), np.float32))


# ---------------------------------------------------------------- odd images (issue 7)

def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(width: int, height: int, bit_depth: int, colour: int, rows: list[bytes] | None = None,
            header_only: bool = False) -> bytes:
    """A PNG written by hand (Pillow cannot write some of these); all-zero rows unless given,
    no rows at all with ``header_only``."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    head = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
    if header_only:
        return head + _png_chunk(b"IDAT", zlib.compress(b"")) + _png_chunk(b"IEND", b"")
    samples = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    zero_row = bytes((width * bit_depth * samples + 7) // 8)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(b"\0" + (rows[i] if rows else zero_row)) for i in range(height)) + z.flush()
    return head + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def test_la_keeps_grey_and_drops_alpha_with_warning(crop):
    la = Image.fromarray(crop).convert("LA")
    with pytest.warns(ConversionWarning, match="alpha"):
        out = load_rgb8(encoded(la))
    grey = np.asarray(la)[..., 0]
    assert all((out[..., c] == grey).all() for c in range(3))


def test_16_bit_rgb_png_keeps_the_high_byte_with_warning():
    arr = (np.arange(4 * 6 * 3, dtype=np.uint16).reshape(4, 6, 3) * 1000).astype(">u2")
    data = raw_png(6, 4, 16, 2, [row.tobytes() for row in arr])
    with pytest.warns(ConversionWarning, match="16-bit RGB"):
        out = load_rgb8(data)
    np.testing.assert_array_equal(out, (arr >> 8).astype(np.uint8))


@pytest.mark.parametrize("pixels", [100_000_000, 400_000_000])  # between Pillow's limit and twice it; above
def test_png_bomb_is_refused_before_decoding(pixels, tmp_path, recwarn):
    """12 kB of PNG that would decode to 10^8 pixels: refused from the header (Pillow itself only warns)."""
    side = int(pixels ** 0.5)
    bomb = raw_png(side, side, 1, 0, header_only=pixels > 2 * Image.MAX_IMAGE_PIXELS)
    assert len(bomb) < 20_000
    with pytest.raises(ImageError, match="decompression bomb"):
        load_rgb8(bomb)
    assert not recwarn.list  # no DecompressionBombWarning on the way

    p = tmp_path / "bomb.png"
    p.write_bytes(bomb)
    r = CliRunner().invoke(main, ["encode", str(p), "-o", str(tmp_path / "bomb.rdc")])
    assert r.exit_code == 1
    assert r.output.count("\n") == 1
    assert r.output.startswith("rdcodec: error: image refused as a possible decompression bomb")
    assert list(tmp_path.iterdir()) == [p]


@pytest.mark.parametrize("shape", [(1, 1), (1, 5000), (5000, 1)])
def test_tiny_and_extreme_aspect_images_round_trip(codec, shape):
    rng = np.random.default_rng(shape[1])
    img = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    arr = load_rgb8(encoded(Image.fromarray(img)))
    np.testing.assert_array_equal(arr, img)
    c = codec.compress(arr, 0.5)
    recon, _ = codec.decompress(c.data)
    out = recon.render(0.0)
    assert out.shape == img.shape
    np.testing.assert_array_equal(out, c.recon.render(0.0))
