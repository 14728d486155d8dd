"""A uint8 cache of random training crops, built once and reused by every step.

Decoding JPEGs costs more than a training step on two cores, so crops are cut once into
a ``(n, 3, size, size)`` uint8 tensor (``size=256``: 196 KiB a crop) and batches are drawn
from it with random flips. Large photos are first downscaled by a random factor in
[0.5, 1] to wash out JPEG artefacts and to vary the scale of content.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm"}


def list_images(folders: list[str | Path]) -> list[Path]:
    files: list[Path] = []
    for folder in folders:
        files += sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return files


def build_crop_cache(folders: list[str | Path], n_crops: int, size: int, seed: int = 0) -> torch.Tensor:
    """Cut ``n_crops`` random ``size x size`` crops, spread over images by area."""
    rng = random.Random(seed)
    files = list_images(folders)
    if not files:
        raise FileNotFoundError(f"no images found in {folders}")
    images = []
    for path in files:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if min(im.size) > 2 * size:
                f = rng.uniform(0.5, 1.0)
                im = im.resize((max(size, round(im.width * f)), max(size, round(im.height * f))),
                               Image.BICUBIC)
            if min(im.size) >= size:
                images.append(np.asarray(im))
    areas = np.array([a.shape[0] * a.shape[1] for a in images], dtype=np.float64)
    counts = np.random.default_rng(seed).multinomial(n_crops, areas / areas.sum())
    out = torch.empty((n_crops, 3, size, size), dtype=torch.uint8)
    i = 0
    for arr, k in zip(images, counts):
        h, w = arr.shape[:2]
        for _ in range(k):
            top, left = rng.randrange(h - size + 1), rng.randrange(w - size + 1)
            out[i] = torch.from_numpy(arr[top:top + size, left:left + size].copy()).permute(2, 0, 1)
            i += 1
    return out[torch.randperm(n_crops, generator=torch.Generator().manual_seed(seed))]


def load_or_build(cache_path: Path, folders: list[str | Path], n_crops: int, size: int) -> torch.Tensor:
    if cache_path.exists():
        return torch.load(cache_path)
    crops = build_crop_cache(folders, n_crops, size)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(crops, cache_path)
    return crops


def sample_batch(crops: torch.Tensor, batch: int, crop: int, gen: torch.Generator) -> torch.Tensor:
    """A float batch in [0, 1], random sub-crop of side ``crop`` and random flips."""
    idx = torch.randint(len(crops), (batch,), generator=gen)
    size = crops.shape[-1]
    top, left = (int(v) for v in torch.randint(size - crop + 1, (2,), generator=gen))
    x = crops[idx, :, top:top + crop, left:left + crop].float().div_(255.0)
    if torch.rand((), generator=gen) < 0.5:
        x = x.flip(-1)
    return x.contiguous(memory_format=torch.channels_last)


def mixed_batch(crops: torch.Tensor, mix: torch.Tensor | None, batch: int, n_mix: int, crop: int,
                gen: torch.Generator, mix_crop: int | None = None) -> list[torch.Tensor]:
    """Like :func:`sample_batch`, with the first ``n_mix`` samples drawn from a second cache.

    The two caches may hold crops of different sides (e.g. 256 from large photos, 224 from
    Imagenette's 224 x 224 images). The first cache's samples are sub-cropped to ``crop``, the
    second's to ``mix_crop`` (default ``crop``). Returns the batch as a list of parts, one
    ``(b, 3, side, side)`` tensor per crop side, the second cache's samples first: one part
    when both sides agree, two when they differ (a forward pass takes one side at a time).
    """
    mix_crop = crop if mix_crop is None else mix_crop
    if mix is None or n_mix <= 0:
        return [sample_batch(crops, batch, crop, gen)]
    parts = [sample_batch(mix, n_mix, mix_crop, gen)]
    if batch > n_mix:
        parts.append(sample_batch(crops, batch - n_mix, crop, gen))
    if len(parts) == 2 and mix_crop == crop:
        parts = [torch.cat(parts)]
    return [p.contiguous(memory_format=torch.channels_last) for p in parts]
