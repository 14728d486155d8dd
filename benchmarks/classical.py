"""Classical image codecs on a folder of images, measured with their real encoded bytes.

Every codec goes through a Python binding: Pillow (JPEG, WebP, JPEG 2000, AVIF), pillow-jxl-plugin (JPEG XL) and
pillow-heif (HEVC intra in a HEIF file, libheif + x265). For each setting of a codec's sweep, every image is encoded
to bytes in memory, the bytes are decoded back, and bpp = 8 * len(bytes) / (H * W) counts the whole file (headers
and container included). PSNR / MS-SSIM are computed per image on 8-bit RGB and averaged over the images.

Settings are ordered from the lowest to the highest rate and chosen to span about 0.05-2.5 bpp on Kodak; where a
codec cannot go that low, its sweep starts at its lowest setting (bpp on kodim01-02 in brackets):

- jpeg: ``quality``, libjpeg defaults (4:2:0 chroma, no Huffman optimisation) [quality 1: 0.17 bpp].
- webp: ``quality``, ``method=6``, lossy [quality 0: 0.09 bpp].
- jpeg2000: OpenJPEG, raw codestream (``no_jp2=True``), ``quality_mode="rates"``, ``quality_layers=[ratio]`` with
  the compression ratio swept, ``irreversible=True`` (9/7 wavelet) and ``mct=1`` (RGB -> YCbCr colour transform;
  Pillow's default is 0, which codes R, G, B separately).
- avif: libavif + libaom, ``quality``, ``subsampling="4:4:4"``, ``speed=6``, full range, and
  ``advanced=[("tune", "psnr")]`` (libaom's tuning, passed through libavif's codec-specific options): on kodim01-02 it
  gains 0.1 / 0.3 / 0.6 dB at matched bpp over libavif's default tuning in 0.05-0.3 / 0.3-1 / 1-2.5 bpp.
- jpegxl: ``quality``, which libjxl maps to the Butteraugli distance (``JxlEncoderDistanceFromQuality``:
  0.1 + 0.09 * (100 - quality) from quality 30 up, rising to distance 25 at quality 0); ``effort=7``, lossy (XYB)
  [quality 0: 0.13 bpp].
- hevc: libheif's x265 encoder (preset ``slow``, libheif's default), ``quality`` (libheif sets x265's
  CRF = (100 - quality) / 2; an odd quality gives the same bytes as the next even one, so the sweep uses even
  qualities), ``chroma=444`` and ``enc_params=HEVC_PSNR_PARAMS``. PSNR tuning needs more than libheif's
  own ``tune="psnr"`` parameter (the raw ``x265:tune`` is rejected by x265's parameter parser): libheif applies the
  tune preset and then forces ``psy-rd=1.0``, ``psy-rdoq=1.0`` and ``aq-mode=1`` on top, so ``tune="psnr"`` alone only
  zeroes the AQ strength and, on kodim01-02, moves along the same curve (+0.005 dB at matched bpp over libheif's default
  ``tune="ssim"``). Passing ``x265:psy-rd=0`` and ``x265:psy-rdoq=0`` as well (``x265:`` parameters are applied after
  libheif's overrides) gives +0.58 dB at matched bpp; ``x265:aq-mode=0`` changes no byte once ``tune="psnr"`` is set.

Encoding and decoding times are wall-clock seconds per image, each library with its default threading.

    python benchmarks/classical.py ../shared/data/kodak --out benchmarks/results/kodak --codecs jpeg,webp
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, features

from rdcodec.eval import metrics

IMAGE_SUFFIXES = (".png",)


@dataclass(frozen=True)
class Codec:
    """One classical codec: how to encode at a setting, how to decode, and what it needs to run."""

    name: str
    description: str
    settings: list
    encode: Callable[[np.ndarray, Any], bytes]
    decode: Callable[[bytes], np.ndarray]
    missing: Callable[[], str | None]
    library: Callable[[], str]

    def code(self, img: np.ndarray, setting) -> tuple[bytes, np.ndarray]:
        """Encode ``img`` (HxWx3 uint8) at ``setting``; return the bytes and their decoded HxWx3 uint8 image."""
        data = self.encode(img, setting)
        return data, self.decode(data)


# --------------------------------------------------------------------------- metrics


# psnr and ms_ssim: one implementation for the package and the benchmarks
psnr, ms_ssim = metrics.psnr, metrics.ms_ssim


# --------------------------------------------------------------------------- Pillow-based encoders and decoders


def pil_encode(img: np.ndarray, fmt: str, **options) -> bytes:
    """Save ``img`` with Pillow in format ``fmt`` to bytes."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, **options)
    return buf.getvalue()


def pil_decode(data: bytes) -> np.ndarray:
    """Decode any format Pillow (or a registered plugin) reads, as HxWx3 uint8 RGB."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def encode_jpeg(img: np.ndarray, quality: int) -> bytes:
    return pil_encode(img, "JPEG", quality=int(quality), subsampling="4:2:0")


def encode_webp(img: np.ndarray, quality: int) -> bytes:
    return pil_encode(img, "WEBP", quality=int(quality), method=6, lossless=False)


def encode_jpeg2000(img: np.ndarray, ratio: float) -> bytes:
    return pil_encode(img, "JPEG2000", no_jp2=True, quality_mode="rates", quality_layers=[float(ratio)],
                      irreversible=True, mct=1)


def encode_avif(img: np.ndarray, quality: int) -> bytes:
    return pil_encode(img, "AVIF", quality=int(quality), subsampling="4:4:4", speed=6, range="full",
                      advanced=[("tune", "psnr")])


def encode_jpegxl(img: np.ndarray, quality: float) -> bytes:
    import_module("pillow_jxl")  # registers the "JXL" format with Pillow
    return pil_encode(img, "JXL", quality=float(quality), effort=7, lossless=False)


def decode_jpegxl(data: bytes) -> np.ndarray:
    import_module("pillow_jxl")
    return pil_decode(data)


# --------------------------------------------------------------------------- pillow-heif (HEVC)

# x265 tuned for PSNR through libheif (see the module docstring for why all three are needed).
HEVC_PSNR_PARAMS = {"tune": "psnr", "x265:psy-rd": "0", "x265:psy-rdoq": "0"}


def encode_hevc(img: np.ndarray, quality: int) -> bytes:
    import pillow_heif

    buf = io.BytesIO()
    h, w = img.shape[:2]
    # pillow-heif adds "chroma" to the enc_params dict it is given: pass a copy.
    pillow_heif.encode("RGB", (w, h), np.ascontiguousarray(img).tobytes(), buf, format="HEIF", quality=int(quality),
                       chroma=444, enc_params=dict(HEVC_PSNR_PARAMS))
    return buf.getvalue()


def decode_hevc(data: bytes) -> np.ndarray:
    import pillow_heif

    return np.asarray(pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True).to_pillow().convert("RGB"))


# --------------------------------------------------------------------------- availability and library versions


def pil_missing(feature: str) -> Callable[[], str | None]:
    """A check that Pillow was built with ``feature``."""

    def check() -> str | None:
        return None if features.check(feature) else f"Pillow {Image.__version__} was built without {feature}"

    return check


def avif_missing() -> str | None:
    if not features.check("avif"):
        return f"Pillow {Image.__version__} was built without avif"
    from PIL import _avif

    return None if _avif.encoder_codec_available("aom") else "Pillow's libavif has no libaom encoder"


def package_missing(module: str, package: str) -> str | None:
    """None if ``module`` imports, else a reason naming the pip ``package`` to install."""
    try:
        import_module(module)
    except ImportError as e:
        return f"{package} is not installed ({e}); pip install {package}"
    return None


def jpegxl_missing() -> str | None:
    return package_missing("pillow_jxl", "pillow-jxl-plugin")


def hevc_missing() -> str | None:
    reason = package_missing("pillow_heif", "pillow-heif")
    if reason:
        return reason
    import pillow_heif

    info = pillow_heif.libheif_info()
    if "x265" not in info.get("encoders", {}):
        return f"pillow-heif's libheif {info.get('libheif')} has no x265 encoder"
    if not info.get("decoders"):
        return f"pillow-heif's libheif {info.get('libheif')} has no HEVC decoder"
    return None


def package_version(package: str) -> str:
    try:
        return f"{package} {version(package)}"
    except PackageNotFoundError:
        return f"{package} (not installed)"


def pil_library(feature: str) -> Callable[[], str]:
    return lambda: f"Pillow {Image.__version__}, {feature} {features.version(feature)}"


def heif_library() -> str:
    import pillow_heif

    info = pillow_heif.libheif_info()
    return f"{package_version('pillow-heif')}, libheif {info['libheif']}, {info['HEIF']}"


# --------------------------------------------------------------------------- registry

JPEG2000_RATIOS = [480, 320, 240, 160, 120, 96, 72, 48, 36, 24, 16, 12, 9.6]

CODECS: dict[str, Codec] = {
    c.name: c
    for c in (
        Codec("jpeg", "JPEG (libjpeg via Pillow), 4:2:0, quality sweep", [1, 5, 8, 12, 17, 25, 35, 50, 65, 75, 85, 90],
              encode_jpeg, pil_decode, pil_missing("jpg"), pil_library("jpg")),
        Codec("webp", "WebP lossy (libwebp via Pillow), method=6, quality sweep",
              [0, 5, 10, 20, 30, 45, 60, 70, 80, 86, 90, 93], encode_webp, pil_decode, pil_missing("webp"),
              pil_library("webp")),
        Codec("jpeg2000", "JPEG 2000 (OpenJPEG via Pillow), 9/7 irreversible, YCbCr MCT, compression-ratio sweep",
              JPEG2000_RATIOS, encode_jpeg2000, pil_decode, pil_missing("jpg_2000"), pil_library("jpg_2000")),
        Codec("avif", "AVIF (libavif + libaom via Pillow), 4:4:4, speed 6, tune=psnr, quality sweep",
              [2, 6, 10, 20, 30, 40, 50, 58, 65, 72, 78, 83], encode_avif, pil_decode, avif_missing,
              pil_library("avif")),
        Codec("jpegxl", "JPEG XL (libjxl via pillow-jxl-plugin), effort 7, lossy, quality sweep",
              [0, 10, 20, 30, 45, 55, 65, 72, 78, 85, 90, 93], encode_jpegxl, decode_jpegxl, jpegxl_missing,
              lambda: package_version("pillow-jxl-plugin")),
        Codec("hevc", "HEVC intra (x265 via pillow-heif/libheif), 4:4:4, tuned for PSNR (psy-rd 0), quality sweep",
              [0, 6, 10, 16, 20, 26, 30, 36, 40, 46, 50, 56], encode_hevc, decode_hevc, hevc_missing,
              heif_library),
    )
}


def available() -> dict[str, str | None]:
    """Codec name -> None if it can run here, else why not (missing package or library feature)."""
    return {name: codec.missing() for name, codec in CODECS.items()}


# --------------------------------------------------------------------------- sweep


def measure(codec: Codec, img: np.ndarray, setting, psnr_fn, msssim_fn) -> dict[str, float]:
    """Code one image at one setting; return its bpp, metrics and timings."""
    t0 = time.perf_counter()
    data = codec.encode(img, setting)
    t1 = time.perf_counter()
    dec = codec.decode(data)
    t2 = time.perf_counter()
    if dec.shape != img.shape or dec.dtype != np.uint8:
        raise RuntimeError(f"{codec.name} decoded {dec.shape} {dec.dtype}, expected {img.shape} uint8")
    row = {"bpp": 8 * len(data) / (img.shape[0] * img.shape[1]), "psnr-rgb": psnr_fn(img, dec),
           "encoding_time": t1 - t0, "decoding_time": t2 - t1}
    if msssim_fn is not None:
        row["ms-ssim-rgb"] = msssim_fn(img, dec)
    return row


def sweep(name: str, images: Sequence[np.ndarray], psnr_fn=psnr, msssim_fn=ms_ssim, settings=None) -> dict:
    """Run codec ``name`` over its settings (or ``settings``) on ``images``: CompressAI-style results.

    Each metric is averaged over the images at each setting. ``msssim_fn=None`` leaves MS-SSIM out.
    """
    codec = CODECS[name]
    reason = codec.missing()
    if reason:
        raise RuntimeError(f"codec {name} is not available: {reason}")
    settings = list(codec.settings if settings is None else settings)
    keys = ["bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"]
    if msssim_fn is None:
        keys.remove("ms-ssim-rgb")
    results: dict[str, list[float]] = {k: [] for k in keys}
    for setting in settings:
        rows = [measure(codec, img, setting, psnr_fn, msssim_fn) for img in images]
        for k in keys:
            results[k].append(float(np.mean([r[k] for r in rows])))
    return {"name": name, "description": codec.description, "library": codec.library(), "images": len(images),
            "results": results, "settings": settings}


# --------------------------------------------------------------------------- CLI


def load_images(folder: Path, limit: int = 0) -> list[np.ndarray]:
    """The folder's PNG images (sorted by name, the first ``limit`` if given) as HxWx3 uint8 RGB."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if limit:
        files = files[:limit]
    if not files:
        raise SystemExit(f"no PNG images in {folder}")
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


def parse_codecs(text: str) -> list[str]:
    names = list(CODECS) if text == "all" else [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CODECS]
    if unknown:
        raise SystemExit(f"unknown codec(s) {', '.join(unknown)}; known: {', '.join(CODECS)}")
    return names


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/kodak"))
    ap.add_argument("--codecs", default="all", help=f"comma-separated, from: {', '.join(CODECS)} (default: all)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N images")
    ap.add_argument("--no-ms-ssim", action="store_true", help="skip MS-SSIM (faster; needs sides > 160 pixels)")
    args = ap.parse_args(argv)
    names = parse_codecs(args.codecs)
    images = load_images(args.folder, args.limit)
    args.out.mkdir(parents=True, exist_ok=True)
    reasons = available()
    for name in names:
        if reasons[name]:
            print(f"{name}: skipped, {reasons[name]}")
            continue
        t0 = time.time()
        result = sweep(name, images, msssim_fn=None if args.no_ms_ssim else ms_ssim)
        (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        r = result["results"]
        print(f"{name}: {len(images)} images, bpp {r['bpp'][0]:.3f}-{r['bpp'][-1]:.3f}, "
              f"PSNR {r['psnr-rgb'][0]:.2f}-{r['psnr-rgb'][-1]:.2f} dB, {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
