"""The Python API: ``encode``, ``decode``, ``info`` and ``strip``.

    >>> import rdcodec
    >>> data = rdcodec.encode("kodim23.png", alpha=0.5)       # bytes of a .rdc file
    >>> img = rdcodec.decode(data, beta=0.25)                   # PIL.Image.Image (RGB)
    >>> rdcodec.info(data)["layers"]                            # {'header': 36, 'base': ..., 'residual': ...}
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from PIL import Image

from . import weights as _weights
from .bitstream import container
from .codec import DEFAULT_MAX_PIXELS, Codec, Compressed
from .errors import RdcError
from .image import load_rgb8
from .model.rdc import CodingModel


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise RdcError(f"unknown device '{device}' (use cpu, cuda or auto)")
    if device == "cuda" and not torch.cuda.is_available():
        raise RdcError("--device cuda was asked for, but no CUDA device is available")
    return device


@lru_cache(maxsize=4)
def get_codec(weights: str | None = None, device: str = "cpu") -> Codec:
    """A cached :class:`~rdcodec.codec.Codec` for the given weights file and device."""
    model, z_pmf, info = _weights.load(weights)
    return Codec(CodingModel(model, z_pmf, resolve_device(device)), info.weights_id, info.name)


def compress(image, alpha: float = 0.5, residual: bool = True, *, weights: str | None = None,
             device: str = "cpu", estimate: bool = False) -> Compressed:
    """Like :func:`encode`, but also returns the encoder's own reconstruction."""
    return get_codec(weights, device).compress(load_rgb8(image), alpha, residual, estimate)


def encode(image, alpha: float = 0.5, residual: bool = True, *, weights: str | None = None,
           device: str = "cpu") -> bytes:
    """Compress ``image`` (path, encoded bytes, PIL image or HxWx3 uint8 array) to .rdc bytes.

    ``alpha`` in [0, 1] picks the rate (0 lowest, 1 highest); ``residual=False`` writes the
    base layer only.
    """
    return compress(image, alpha, residual, weights=weights, device=device).data


def _as_bytes(data: bytes | str | Path) -> bytes:
    if isinstance(data, (str, Path)):
        from .fileio import read_input

        return read_input(str(data))
    return bytes(data)


def decode(data: bytes | str | Path, beta: float | None = None, *, weights: str | None = None,
           device: str = "cpu", max_pixels: int = DEFAULT_MAX_PIXELS,
           ignore_residual_errors: bool = False) -> Image.Image:
    """Decode .rdc bytes (or a path) to an RGB image: ``x_hat_1 + (1 - beta) * r`` (paper Eq. 9).

    ``beta`` defaults to 0 (fidelity) and has no effect on files without a residual layer.
    """
    recon, _ = get_codec(weights, device).decompress(_as_bytes(data), max_pixels, ignore_residual_errors)
    return Image.fromarray(recon.render(0.0 if beta is None else float(beta)), "RGB")


def info(data: bytes | str | Path) -> dict:
    """Header fields and layer sizes of .rdc ``data`` or a path (layers are verified, nothing is decoded)."""
    data = _as_bytes(data)
    f = container.unpack(data, ignore_residual_errors=True)
    h = f.header
    pixels = h.width * h.height
    layers = {"header": container.HEADER_SIZE, "base": h.base_len,
              "residual": len(f.residual) if f.residual is not None else 0}
    out = {
        "format_version": h.version, "width": h.width, "height": h.height,
        "alpha": round(h.alpha, 6), "bytes": len(data), "layers": layers,
        "bpp": 8 * len(data) / pixels,
        "bpp_layers": {k: 8 * v / pixels for k, v in layers.items()},
        "residual": "present" if f.residual is not None else ("absent" if not h.has_residual else "dropped"),
        "weights_id": f"{h.weights_id:08x}",
        "weights": _weights.known_weights().get(h.weights_id),
    }
    if f.residual_error:
        out["residual_error"] = f.residual_error
    return out


def strip(data: bytes | str | Path) -> bytes:
    """Drop the residual layer; the base layer is copied bit for bit."""
    return container.strip_residual(_as_bytes(data))
