"""The Python API: ``encode``, ``decode``, ``info`` and ``strip``, and rate control.

    >>> import rdcodec
    >>> data = rdcodec.encode("kodim23.png", alpha=0.5)       # bytes of a .rdc file
    >>> img = rdcodec.decode(data, beta=0.25)                   # PIL.Image.Image (RGB)
    >>> rdcodec.info(data)["layers"]                            # {'header': 28, 'base': ..., 'residual': ...}
    >>> c, alpha = rdcodec.compress_to_size("kodim23.png", 20_000)          # largest alpha that fits
    >>> c, alpha, db = rdcodec.compress_to_psnr("kodim23.png", 30.0)       # smallest alpha reaching 30 dB
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import torch
from PIL import Image

from . import weights as _weights
from .bitstream import container
from .codec import DEFAULT_MAX_PIXELS, Codec, Compressed, refinement_steps  # noqa: F401  (refinement_steps: API)
from .errors import CorruptError, RdcError
from .eval.metrics import psnr
from .image import load_rgb8
from .model.fastpath import bf16_default
from .model.rdc import CodingModel
from .vision.features import FeatureBackbone
from .wiener import OutputFilter

#: What ``encode`` and friends accept: a path, encoded image bytes, a PIL image or an HxWx3 uint8 array.
ImageSource: TypeAlias = str | Path | bytes | Image.Image | np.ndarray

#: Default tolerance of :func:`compress_to_psnr`, in dB above the target.
PSNR_TOLERANCE = 0.1

#: What ``machines=`` accepts: the name of a shipped vision network (:data:`MACHINES_DEFAULT`), a
#: network's TFLite file (or one saved by ``rdcodec.vision.tflite.TFLiteGraph.save``), or a ready
#: :class:`FeatureBackbone`.
BackboneSource: TypeAlias = str | Path | FeatureBackbone

#: The shipped vision network for ``machines=``: stage I's training backbone, the MobileNetV1 1.0
#: embedding extractor (``weights/mobilenet-v1-embedding.md``; Apache-2.0, google-coral/test_data).
MACHINES_DEFAULT = "mobilenet-v1-embedding"


def load_backbone(source: BackboneSource) -> FeatureBackbone:
    """The :class:`~rdcodec.vision.features.FeatureBackbone` for ``machines=``: a shipped network by
    name (e.g. :data:`MACHINES_DEFAULT`, unless a file of that name exists), a TFLite or saved-graph
    file (loaded once per path), or the backbone itself. Raises :class:`RdcError` when the source
    cannot be read as a vision network."""
    if isinstance(source, FeatureBackbone):
        return source
    # shipped names are cached by name: their file is checked against its SHA-256 once
    return _backbone(source if _weights.is_shipped_backbone(source) else str(Path(source).resolve()))


@lru_cache(maxsize=2)
def _backbone(source: str) -> FeatureBackbone:
    path = str(_weights.resolve_backbone(source)) if _weights.is_shipped_backbone(source) else source
    if not Path(path).is_file():
        names = ", ".join(_weights.shipped_backbones()) or "none"
        raise RdcError(f"no vision network at '{path}' (give a shipped one by name: {names}; or a TFLite file)")
    if Path(path).suffix != ".safetensors":  # a saved graph (TFLiteGraph.save) or a TFLite file
        with open(path, "rb") as f:
            if f.read(8)[4:] != b"TFL3":  # the flatbuffer file identifier of every TFLite model
                raise RdcError(f"cannot read '{path}' as a TFLite vision network: it is not a TFLite file")
    try:
        return FeatureBackbone.load(path)
    except ImportError as exc:
        raise RdcError(f"refining for machines reads TFLite files with ai-edge-litert: {exc}") from exc
    except Exception as exc:  # not a graph of the supported operators, or not one saved by rdcodec
        raise RdcError(f"cannot read '{path}' as a vision network ({type(exc).__name__}: {exc})") from exc


def resolve_device(device: str) -> str:
    """``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available) -> the device to use; raises if unavailable."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise RdcError(f"unknown device '{device}' (use cpu, cuda or auto)")
    if device == "cuda" and not torch.cuda.is_available():
        raise RdcError("--device cuda was asked for, but no CUDA device is available")
    return device


def get_codec(weights: str | None = None, device: str = "cpu", bf16: bool | None = None) -> Codec:
    """A cached :class:`~rdcodec.codec.Codec` for the given weights file and device.

    ``bf16``: run the inner layers of the transforms (``g_a``, ``g_s``, the residual
    reconstruction) in bfloat16; None: where the CPU has native bfloat16 or
    ``$RDCODEC_TRANSFORMS`` asks for it (:func:`rdcodec.model.fastpath.bf16_default`). Files
    made either way decode with either; the coded latents and the decoded pixels move by
    bfloat16 rounding (``docs/model.md``).
    """
    device = resolve_device(device)
    return _codec(weights, device, bf16_default(device) if bf16 is None else bf16)


@lru_cache(maxsize=4)
def _codec(weights: str | None, device: str, bf16: bool) -> Codec:
    model, z_pmf, info = _weights.load(weights)
    return Codec(CodingModel(model, z_pmf, device, bf16=bf16), info.weights_id, info.name)


def decoder_for(data: bytes, weights: str | None = None, device: str = "cpu") -> Codec:
    """The codec to decode ``data`` with: ``weights`` when given (or ``$RDCODEC_WEIGHTS``), else
    the shipped weights that the file names (its ``weights_id``), else the default.

    So a file made with opt-in weights (``--weights rdc-v9``) decodes without naming them again.
    """
    if weights is None and not os.environ.get(_weights.ENV_VAR):
        try:
            weights = _weights.known_weights().get(container.parse_header(data).weights_id)
        except RdcError:
            pass  # a damaged header is reported by the decoder itself
    return get_codec(weights, device)


def compress(image: ImageSource, alpha: float = 0.5, residual: bool = True, *, weights: str | None = None,
             device: str = "cpu", estimate: bool = False, check_residual: bool = False,
             reconstruct: bool = True, refine: int = 0,
             progress: Callable[[int, int], None] | None = None, output_filter: bool = False,
             machines: BackboneSource | None = None) -> Compressed:
    """Like :func:`encode`, but also returns the encoder's own reconstruction (unless
    ``reconstruct=False``, which skips the synthesis)."""
    backbone = load_backbone(machines) if machines is not None else None
    return get_codec(weights, device).compress(load_rgb8(image), alpha, residual, estimate,
                                               reconstruct=reconstruct, check_residual=check_residual,
                                               refine=refine, progress=progress, output_filter=output_filter,
                                               machines=backbone)


def compress_to_size(image: ImageSource, max_bytes: int, residual: bool = True, *, weights: str | None = None,
                     device: str = "cpu", check_residual: bool = False,
                     reconstruct: bool = True, output_filter: bool = False) -> tuple[Compressed, float]:
    """The largest alpha whose file fits in ``max_bytes`` (bisection on real coded sizes, within 2%).

    Returns the file (with its reconstruction unless ``reconstruct=False``) and the alpha
    chosen; when even alpha = 0 is too big, alpha 0 (the smallest file rdcodec can make). For a bpp target pass
    ``int(bpp * width * height / 8)``. ``output_filter``: every probe fits its Wiener filter (the
    sizes include it).
    """
    return get_codec(weights, device).compress_to_size(load_rgb8(image), max_bytes, residual,
                                                       check_residual=check_residual, reconstruct=reconstruct,
                                                       output_filter=output_filter)


def compress_to_psnr(image: ImageSource, target_psnr: float, residual: bool = True, *,
                     weights: str | None = None, device: str = "cpu", tolerance: float = PSNR_TOLERANCE,
                     check_residual: bool = False, output_filter: bool = False) -> tuple[Compressed, float, float]:
    """The smallest alpha whose file decodes (at beta = 0) to at least ``target_psnr`` dB.

    Bisection on alpha; every probe is a real encode whose reconstruction is the decoder's
    output pixel for pixel (the encoder decodes its own symbols with the decoder's
    functions), measured against ``image`` with :func:`rdcodec.eval.metrics.psnr`. It stops
    at the first file within ``[target_psnr, target_psnr + tolerance]`` dB (about 6-8
    encodes) or when alpha cannot be refined further. When the target is out of reach, the
    nearest reachable quality: alpha 1 if even it stays below the target, alpha 0 if even
    it is above. Returns the file, the alpha chosen and its PSNR at beta = 0. With
    ``output_filter`` every probe fits its Wiener filter and is measured with it applied.
    """
    if not 0.0 < target_psnr < 1e9:
        raise ValueError(f"target PSNR must be a positive number of dB, got {target_psnr}")
    if not tolerance > 0.0:
        raise ValueError(f"tolerance must be positive, got {tolerance}")
    codec = get_codec(weights, device)
    img = load_rgb8(image)
    an = codec.analyze(img)

    def probe(a: float) -> tuple[Compressed, float]:
        c = codec.compress(an, a, residual, check_residual=check_residual, output_filter=output_filter)
        assert c.recon is not None
        return c, psnr(img, c.recon.render(0.0))

    best = probe(0.0)
    if best[1] >= target_psnr:
        return best[0], 0.0, best[1]
    best = probe(1.0)
    if best[1] < target_psnr:
        return best[0], 1.0, best[1]
    lo, hi = 0.0, 1.0  # quality at lo is below the target, at hi it is reached
    for _ in range(16):  # the header stores alpha in 16 bits
        if best[1] <= target_psnr + tolerance:
            break
        mid = (lo + hi) / 2
        if container.quantize_alpha(mid) in (container.quantize_alpha(lo), container.quantize_alpha(hi)):
            break
        c, q = probe(mid)
        if q >= target_psnr:
            hi, best = mid, (c, q)
        else:
            lo = mid
    return best[0], hi, best[1]


def encode(image: ImageSource, alpha: float = 0.5, residual: bool = True, *, weights: str | None = None,
           device: str = "cpu", check_residual: bool = False, refine: int = 0,
           progress: Callable[[int, int], None] | None = None, output_filter: bool = False,
           machines: BackboneSource | None = None) -> bytes:
    """Compress ``image`` (path, encoded bytes, PIL image or HxWx3 uint8 array) to .rdc bytes.

    ``alpha`` in [0, 1] picks the rate (0 lowest, 1 highest); ``residual=False`` writes the
    base layer only. ``check_residual=True`` decodes the file once more inside the encoder
    and drops the residual layer if it would not improve beta = 0 (about 2x the encode time).
    ``refine=N`` spends N gradient steps on this image's latent first (:mod:`rdcodec.refine`;
    tens of times the encode time at N = 50, for a better file that every decoder reads);
    ``progress(step, N)`` follows the steps. ``output_filter=True`` fits a Wiener filter to this
    image's beta = 0 output and writes it into the residual layer when it pays for its bytes
    (:mod:`rdcodec.wiener`; about 3x the encode time; the file's header says so, flag bit 1).
    ``machines``, a vision network (:data:`MACHINES_DEFAULT`, the shipped MobileNetV1 embedding
    extractor stage I trained against; a TFLite file; or a
    :class:`~rdcodec.vision.features.FeatureBackbone`), makes the
    refinement search a base layer that keeps that network's features
    (:func:`rdcodec.refine.refine_for_machines`; ``refine`` defaults to
    :func:`rdcodec.refine.machine_steps` then: 20 steps at alpha 0, 10 from alpha 0.2 on). The
    file is an ordinary rdcodec file; decode it at beta = 1 for machines.
    """
    return compress(image, alpha, residual, weights=weights, device=device, check_residual=check_residual,
                    reconstruct=False, refine=refine, progress=progress, output_filter=output_filter,
                    machines=machines).data


def _as_bytes(data: bytes | str | Path) -> bytes:
    """Bytes as they are; a path (or '-' for stdin) read."""
    if isinstance(data, (str, Path)):
        from .fileio import read_input

        return read_input(str(data))
    return bytes(data)


def decode(data: bytes | str | Path, beta: float | None = None, *, weights: str | None = None,
           device: str = "cpu", max_pixels: int = DEFAULT_MAX_PIXELS,
           ignore_residual_errors: bool = False, predict_residual: bool = False) -> Image.Image:
    """Decode .rdc bytes (or a path) to an RGB image: ``x_hat_1 + (1 - beta) * r`` (paper Eq. 9).

    ``beta`` defaults to 0 (fidelity). It has no effect on a file without a residual layer
    unless ``predict_residual=True``, which renders such a file with the residual the decoder
    predicts from the base layer (:meth:`~rdcodec.codec.Codec.decompress`).
    """
    data = _as_bytes(data)
    recon, _ = decoder_for(data, weights, device).decompress(data, max_pixels, ignore_residual_errors,
                                                             predict_residual=predict_residual)
    return Image.fromarray(recon.render(0.0 if beta is None else float(beta)), "RGB")


def info(data: bytes | str | Path) -> dict[str, Any]:
    """Header fields and layer sizes of .rdc ``data`` or a path (layers are verified, nothing is decoded)."""
    data = _as_bytes(data)
    f = container.unpack(data, ignore_residual_errors=True)
    h = f.header
    pixels = h.width * h.height
    decoder = _weights.known_weights().get(h.weights_id)
    layers = {"header": h.size, "base": h.base_len,
              "residual": len(f.residual) if f.residual is not None else 0}
    out = {
        "format_version": h.version, "width": h.width, "height": h.height,
        "latent_grid": h.grid, "latent_shape": list(h.latent_shape),
        "alpha": round(h.alpha, 6), "bytes": len(data), "layers": layers,
        "bpp": 8 * len(data) / pixels,
        "bpp_layers": {k: 8 * v / pixels for k, v in layers.items()},
        "residual": "present" if f.residual is not None else ("absent" if not h.has_residual else "dropped"),
        "weights_id": f"{h.weights_id:08x}",
        "weights": decoder,
        "encoders": _weights.encoders_of(decoder),
    }
    if f.residual_error:
        out["residual_error"] = f.residual_error
    if h.has_filter and f.residual is not None:
        try:
            flt, _ = OutputFilter.split_layer(f.residual, h.version)
            out["output_filter"] = flt.describe()
        except CorruptError as e:
            out["output_filter"] = {"error": str(e)}
    return out


def strip(data: bytes | str | Path) -> bytes:
    """Drop the residual layer; the base layer is copied bit for bit."""
    return container.strip_residual(_as_bytes(data))
