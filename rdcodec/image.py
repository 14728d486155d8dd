"""Reading input images and writing decoded ones.

rdcodec codes 8-bit RGB. Other inputs are converted, each with a warning that says what
was lost (documented in ``docs/format.md``):

=================  ==================================================================
input              behaviour
=================  ==================================================================
RGB 8-bit          coded as is
L / LA / P / PA    converted to RGB (grey or palette colours are kept exactly);
                   decoded output is RGB
RGBA / LA / PA     the alpha channel is discarded (warning)
I;16 / I / F       16-bit or float samples are reduced to 8 bits, rounded (warning)
16-bit RGB(A) PNG  Pillow keeps the high byte of each sample (warning)
CMYK / YCbCr / ..  converted to RGB by Pillow (warning)
EXIF orientation   applied before coding, so the decoded image is upright
1x1, 1xN, Nx1      coded as is (the transform pads to a multiple of 32)
=================  ==================================================================

Images larger than 65535 pixels on a side, files Pillow refuses (truncated files,
non-images) and images over Pillow's decompression-bomb limit
(``PIL.Image.MAX_IMAGE_PIXELS``, 89,478,485 pixels by default) raise
:class:`~rdcodec.errors.ImageError`. The bomb check reads only the header, so nothing is
decompressed or allocated; Pillow itself would only warn below twice its limit and then
decode.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

MAX_SIDE = 65535


class ConversionWarning(UserWarning):
    """An input image was converted to 8-bit RGB and lost something on the way."""


def open_image(source: str | Path | bytes) -> Image.Image:
    """Open and fully load an image file (path or bytes), with clear errors."""
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice it, then decodes: refuse instead.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        if im.mode in ("RGB", "RGBA") and any(";16" in str(t.args) for t in im.tile):
            warnings.warn(f"16-bit {im.mode} image: samples reduced to 8 bits (high byte kept)",
                          ConversionWarning, stacklevel=2)
        im.load()
        return im
    except FileNotFoundError:
        raise ImageError(f"no such file: {source}") from None
    except UnidentifiedImageError:
        raise ImageError("input is not an image Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"image refused as a possible decompression bomb: {e}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"cannot read image: {e}") from None


def to_rgb8(im: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 array of ``im``, converted as documented above."""
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # a damaged EXIF block must not stop coding
        warnings.warn("EXIF orientation could not be read and was ignored", ConversionWarning, stacklevel=2)
    mode = im.mode
    if mode != "RGB":
        if "A" in mode or (mode == "P" and "transparency" in im.info):
            warnings.warn(f"{mode} image: alpha channel discarded", ConversionWarning, stacklevel=2)
        if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            warnings.warn(f"{mode} image: samples reduced to 8 bits", ConversionWarning, stacklevel=2)
            arr = np.asarray(im, dtype=np.float64)
            peak = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
            arr = np.clip(np.round(arr / peak * 255.0), 0, 255).astype(np.uint8)
            im = Image.fromarray(arr, "L")
        elif mode not in ("L", "LA", "P", "PA", "RGBA", "1"):
            warnings.warn(f"{mode} image converted to RGB", ConversionWarning, stacklevel=2)
        im = im.convert("RGB")
    if im.width > MAX_SIDE or im.height > MAX_SIDE:
        raise ImageError(f"image is {im.width}x{im.height}; rdcodec codes at most {MAX_SIDE} pixels a side")
    return np.asarray(im, dtype=np.uint8)


def load_rgb8(source: str | Path | bytes | Image.Image | np.ndarray) -> np.ndarray:
    """Any supported input (path, encoded bytes, PIL image, HxWx3 uint8 array) -> RGB uint8."""
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim != 3 or source.shape[2] != 3:
            raise ImageError("arrays must be HxWx3 uint8")
        if min(source.shape[:2]) < 1:
            raise ImageError("image is empty")
        return np.ascontiguousarray(source)
    im = source if isinstance(source, Image.Image) else open_image(source)
    return to_rgb8(im)
