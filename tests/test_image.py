"""Documented behaviour for inputs that are not 8-bit RGB (see rdcodec/image.py)."""

import io

import numpy as np
import pytest
from PIL import Image

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
