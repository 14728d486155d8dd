"""Evaluate rdcodec on a folder of the user's own images (``rdcodec eval DIR``).

For each image and each α the real file is made once (``Codec.compress``); its
reconstruction is rendered at each β (equal, pixel for pixel, to what ``decode`` gives).
Rate is the whole file for β < 1 and header + base layer for β = 1 (a stripped file).

    >>> rows = evaluate_folder("photos/", alphas=[0.25, 0.75], betas=[0, 1])   # doctest: +SKIP
    >>> rows[0]                                                                # doctest: +SKIP
    {'alpha': 0.25, 'beta': 0.0, 'images': 12, 'bpp': 0.41, 'psnr-rgb': 29.8, 'ms-ssim-rgb': 0.96}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..bitstream import container
from ..errors import RdcError
from .metrics import MS_SSIM_MIN_SIDE, ms_ssim, psnr

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"}

__all__ = ["evaluate_folder", "list_images", "to_compressai_json"]


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RdcError(f"{folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise RdcError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return files


def evaluate_folder(folder: str | Path, alphas: Sequence[float], betas: Sequence[float], *,
                    weights: str | None = None, device: str = "cpu", labels: dict[str, int] | None = None,
                    classifier: Callable[[np.ndarray], list[int]] | None = None,
                    progress: Callable[[int, int], None] | None = None) -> list[dict[str, float]]:
    """Mean bpp, PSNR, MS-SSIM (and top-1/top-5 % when ``labels``/``classifier`` are given) per (α, β).

    ``labels`` maps file names to class indices; ``classifier`` maps an (H, W, 3) uint8 image
    to its top-5 class indices. MS-SSIM is left out for images with a side under 161 pixels.
    """
    from ..api import get_codec
    from ..image import load_rgb8

    codec = get_codec(weights, device)
    files = list_images(folder)
    cells: dict[tuple[float, float], dict[str, list]] = {}
    for n, path in enumerate(files):
        img = load_rgb8(path.read_bytes())
        an = codec.analyze(img)
        pixels = img.shape[0] * img.shape[1]
        label = labels.get(path.name) if labels else None
        for a in alphas:
            c = codec.compress(an, a)
            assert c.recon is not None
            base_bytes = container.base_only_size(c.data)
            for b in betas:
                dec = c.recon.render(b)
                cell = cells.setdefault((a, b), {"bpp": [], "psnr-rgb": [], "ms-ssim-rgb": [], "top1": [], "top5": []})
                cell["bpp"].append(8 * (len(c.data) if b < 1 else base_bytes) / pixels)
                cell["psnr-rgb"].append(psnr(img, dec))
                if min(img.shape[:2]) >= MS_SSIM_MIN_SIDE:
                    cell["ms-ssim-rgb"].append(ms_ssim(img, dec))
                if label is not None and classifier is not None:
                    top5 = classifier(dec)
                    cell["top1"].append(100.0 * (top5[0] == label))
                    cell["top5"].append(100.0 * (label in top5))
        if progress:
            progress(n + 1, len(files))
    rows = []
    for (a, b), cell in cells.items():
        row = {"alpha": a, "beta": b, "images": len(cell["bpp"])}
        row.update({k: float(np.mean(v)) for k, v in cell.items() if v})
        rows.append(row)
    return rows


def to_compressai_json(rows: list[dict[str, float]], beta: float, name: str) -> dict[str, Any]:
    """One β's rows as a CompressAI-style results document (``results`` of lists, by α)."""
    sel = sorted((r for r in rows if r["beta"] == beta), key=lambda r: r["alpha"])
    keys = [k for k in ("bpp", "psnr-rgb", "ms-ssim-rgb", "top1", "top5") if sel and k in sel[0]]
    return {"name": name, "description": f"rdcodec at beta={beta:g}, alpha grid",
            "results": {"alpha": [r["alpha"] for r in sel], **{k: [r[k] for r in sel] for k in keys}}}
