"""The README's visual comparison at equal file size: Kodak crops, JPEG vs HEVC-intra vs rdcodec.

For each image the *whole* image is coded (so every bpp is over the whole image, as a file
would be sent), then the same crop is cut from every decoded image:

* rdcodec with the default shipped weights at ``--alpha``; its file (both layers) sets the
  byte budget. beta = 0 is that file decoded for fidelity; beta = 1 is the file with its
  residual layer stripped (``rdcodec.strip``), decoded: its bpp is the smaller stripped file.
* JPEG and HEVC-intra with the settings of ``benchmarks/classical.py`` (libjpeg 4:2:0;
  x265 in HEIF, 4:4:4, tuned for PSNR), each at the quality whose file is the largest not
  above rdcodec's file.

Each tile is labelled with the codec's setting, bpp and PSNR (dB, whole image, RGB). The
grid is written to ``docs/img/comparison.png`` and a caption for the README is printed.

    python scripts/comparison.py                  # defaults: ../shared/data/kodak, alpha 0.4
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import classical  # noqa: E402

import rdcodec  # noqa: E402
from rdcodec.api import get_codec  # noqa: E402
from rdcodec.eval.metrics import psnr  # noqa: E402

KODAK = ROOT.parent / "shared" / "data" / "kodak"
OUT = ROOT / "docs" / "img" / "comparison.png"
ALPHA = 0.4
CROP = 256
# image name -> top-left corner (x, y) of the crop: the blue macaw's head, the painted eye
CROPS = {"kodim23": (56, 150), "kodim15": (360, 40)}

JPEG_QUALITIES = list(range(1, 101))
HEVC_QUALITIES = list(range(0, 101, 2))  # libheif maps quality to CRF (100 - q) / 2: odd q = next even q


@dataclass
class Tile:
    title: str        # column header
    setting: str      # first label line
    image: np.ndarray  # the whole decoded image
    bytes: int = 0     # file size; 0 for the original
    psnr: float = 0.0  # dB against the original, whole image

    @property
    def bpp(self) -> float:
        """Bits per pixel of the file over the whole image."""
        return 8 * self.bytes / (self.image.shape[0] * self.image.shape[1])


def largest_fitting(encode: Callable[[int], bytes], settings: Sequence[int], budget: int) -> tuple[int, bytes, bool]:
    """The setting whose file is the largest not above ``budget`` bytes (the smallest setting if none fits).

    Bisection over ``settings`` (file size grows with them), then the neighbours of the
    boundary are checked too, since sizes are not strictly monotone. Returns the setting, its
    file and whether it fits.
    """
    cache: dict[int, bytes] = {}

    def size(i: int) -> int:
        if i not in cache:
            cache[i] = encode(settings[i])
        return len(cache[i])

    if size(0) > budget:
        return settings[0], cache[0], False
    lo, hi = 0, len(settings) - 1
    if size(hi) <= budget:
        lo = hi
    while hi - lo > 1:  # size(lo) fits, size(hi) does not
        mid = (lo + hi) // 2
        if size(mid) <= budget:
            lo = mid
        else:
            hi = mid
    for i in range(max(0, lo - 2), min(len(settings), lo + 3)):
        size(i)
    best = max((i for i in cache if len(cache[i]) <= budget), key=lambda i: (len(cache[i]), -i))
    return settings[best], cache[best], True


def code_image(img: np.ndarray, alpha: float) -> list[Tile]:
    """Code the whole image with every codec; the tiles of one row of the grid."""
    data = get_codec().compress(img, alpha, reconstruct=False).data
    base = rdcodec.strip(data)
    tiles = [Tile("original", "", img)]
    for name, title, settings in (("jpeg", "JPEG", JPEG_QUALITIES), ("hevc", "HEVC-intra", HEVC_QUALITIES)):
        codec = classical.CODECS[name]
        reason = codec.missing()
        if reason:
            raise SystemExit(f"{title} is not available: {reason}")
        q, coded, fits = largest_fitting(functools.partial(codec.encode, img), settings, len(data))
        tiles.append(Tile(title, f"quality {q}" + ("" if fits else " (over budget)"),
                          codec.decode(coded), len(coded)))
    tiles.append(Tile("rdcodec beta = 0", f"alpha {alpha:g}, both layers",
                      np.asarray(rdcodec.decode(data, beta=0.0)), len(data)))
    tiles.append(Tile("rdcodec beta = 1", "residual layer stripped",
                      np.asarray(rdcodec.decode(base, beta=1.0)), len(base)))
    for t in tiles[1:]:
        t.psnr = psnr(img, t.image)
    return tiles


def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans (shipped with matplotlib) when available, else Pillow's own scalable font."""
    try:
        from matplotlib import font_manager

        return ImageFont.truetype(font_manager.findfont(f"DejaVu Sans:{'bold' if bold else 'normal'}"), size)
    except (ImportError, OSError, ValueError):
        return ImageFont.load_default(size=size)


def draw_grid(rows: list[tuple[str, tuple[int, int], list[Tile]]], footer: Sequence[str]) -> Image.Image:
    """Tiles at 1:1 pixels, column titles on top, two label lines under each tile."""
    gap, pad, line = 10, 16, 26
    head, small = _font(22, bold=True), _font(19)
    ncol = len(rows[0][2])
    title_h, label_h, foot_h = 36, 2 * line + 12, len(footer) * line + 16
    width = 2 * pad + ncol * CROP + (ncol - 1) * gap
    height = pad + title_h + len(rows) * (CROP + label_h) + (len(rows) - 1) * gap + foot_h
    canvas = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(canvas)
    for c, t in enumerate(rows[0][2]):
        x = pad + c * (CROP + gap)
        d.text((x + CROP // 2, pad + title_h // 2), t.title, fill="black", font=head, anchor="mm")
    y = pad + title_h
    for name, (cx, cy), tiles in rows:
        for c, t in enumerate(tiles):
            x = pad + c * (CROP + gap)
            canvas.paste(Image.fromarray(np.ascontiguousarray(t.image[cy:cy + CROP, cx:cx + CROP])), (x, y))
            h, w = t.image.shape[:2]
            if not t.bytes:
                lines = (f"{name}, {w}x{h}", f"crop at ({cx}, {cy})")
            else:
                lines = (t.setting, f"{t.bpp:.3f} bpp, {t.psnr:.2f} dB")
            for k, text in enumerate(lines):
                d.text((x + CROP // 2, y + CROP + 6 + k * line), text, fill="black", font=small, anchor="ma")
        y += CROP + label_h + gap
    y += 6 - gap
    for k, text in enumerate(footer):
        d.text((width // 2, y + k * line), text, fill=(60, 60, 60), font=small, anchor="ma")
    return canvas


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", type=Path, default=KODAK, help=f"folder with the Kodak PNGs (default: {KODAK})")
    ap.add_argument("--alpha", type=float, default=ALPHA, help=f"rdcodec's rate (default: {ALPHA})")
    ap.add_argument("-o", "--out", type=Path, default=OUT, help=f"output PNG (default: {OUT.relative_to(ROOT)})")
    args = ap.parse_args(argv)
    rows = []
    for name, corner in CROPS.items():
        path = args.kodak / f"{name}.png"
        if not path.exists():
            raise SystemExit(f"{path} not found (pass --kodak FOLDER)")
        img = np.asarray(Image.open(path).convert("RGB"))
        tiles = code_image(img, args.alpha)
        rows.append((name, corner, tiles))
        print(f"{name}: " + ", ".join(f"{t.title} ({t.setting}) {t.bpp:.3f} bpp {t.psnr:.2f} dB"
                                      for t in tiles[1:]))
    weights = get_codec().weights_name
    footer = (f"{CROP}x{CROP} crops at 1:1 pixels; bpp and PSNR (RGB) are over the whole image.",
              f"JPEG and HEVC-intra: the largest file not above rdcodec's (beta = 0). rdcodec weights: {weights}.")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    draw_grid(rows, footer).save(args.out, optimize=True)
    print(f"wrote {args.out}")
    print("README caption:\n" + caption(rows, args.alpha))


def caption(rows: list[tuple[str, tuple[int, int], list[Tile]]], alpha: float) -> str:
    """One sentence with every tile's bpp, for the README."""

    def per_image(col: int, what: str) -> str:
        values = [tiles[col].setting.removeprefix("quality ") if what == "q" else f"{tiles[col].bpp:.3f}"
                  for _, _, tiles in rows]
        return " / ".join(values)

    names = " / ".join(name for name, _, _ in rows)
    return (f"Whole-image rates, {names}: JPEG {per_image(1, 'bpp')} bpp (quality {per_image(1, 'q')}) and "
            f"HEVC-intra {per_image(2, 'bpp')} bpp (quality {per_image(2, 'q')}), each the largest file not above "
            f"rdcodec's; rdcodec (alpha {alpha:g}) {per_image(3, 'bpp')} bpp at beta = 0 and {per_image(4, 'bpp')} "
            f"bpp at beta = 1 (the same file with its residual layer stripped).")


if __name__ == "__main__":
    main()
