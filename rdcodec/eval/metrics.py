"""Image quality metrics on uint8 RGB arrays (H, W, 3).

``psnr`` uses peak 255 over all three channels. ``ms_ssim`` is the multi-scale SSIM of
Wang, Simoncelli & Bovik (2003) as used by CompressAI's evaluation: an 11-tap Gaussian window
(σ = 1.5) applied separably without padding, K1 = 0.01, K2 = 0.03, five scales with weights
(0.0448, 0.2856, 0.3001, 0.2363, 0.1333), 2x2 average pooling between scales, contrast-structure
terms on the first four scales and SSIM on the last, each clamped at 0; odd sides are
zero-padded by one before pooling; channels are averaged (the conventions of ``pytorch_msssim``).
Both sides must exceed 160 pixels (the fifth scale still needs an 11x11 window).

``miou`` compares two per-pixel class maps (e.g. a segmenter's prediction on a decoded image
against its prediction on the original): per class, IoU = |pred = c and ref = c| / |pred = c or
ref = c|, averaged over the classes present in either map (a class absent from both is skipped,
not counted as 1 or 0). One image at a time; a data set's figure is the mean of the per-image
values (not one IoU over the pooled confusion matrix).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["psnr", "ms_ssim", "miou", "MS_SSIM_MIN_SIDE"]

_WEIGHTS = torch.tensor([0.0448, 0.2856, 0.3001, 0.2363, 0.1333], dtype=torch.float64)
MS_SSIM_MIN_SIDE = 161


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images, peak 255 (capped at 120 dB for identical images)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 255.0 ** 2 * 1e-12)))


def _gaussian(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _ssim_cs(x: torch.Tensor, y: torch.Tensor, g: torch.Tensor, peak: float) -> tuple[torch.Tensor, torch.Tensor]:
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mx, my = _blur(x, g), _blur(y, g)
    sxx = _blur(x * x, g) - mx * mx
    syy = _blur(y * y, g) - my * my
    sxy = _blur(x * y, g) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    ssim = (2 * mx * my + c1) / (mx * mx + my * my + c1) * cs
    return ssim.mean((2, 3)), cs.mean((2, 3))  # per channel


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM of two uint8 RGB images of equal shape, both sides >= 161 pixels."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if min(a.shape[:2]) < MS_SSIM_MIN_SIDE:
        raise ValueError(f"MS-SSIM needs both sides >= {MS_SSIM_MIN_SIDE} pixels, got {a.shape[1]}x{a.shape[0]}")
    x, y = (torch.from_numpy(np.array(v, dtype=np.float64)).permute(2, 0, 1)[None] for v in (a, b))
    g = _gaussian()
    levels = []
    for i in range(len(_WEIGHTS)):
        ssim, cs = _ssim_cs(x, y, g, 255.0)
        levels.append(torch.relu(ssim if i == len(_WEIGHTS) - 1 else cs))
        if i < len(_WEIGHTS) - 1:
            pad = (x.shape[2] % 2, x.shape[3] % 2)  # odd sides: pad by one (zeros, counted in the mean)
            x, y = F.avg_pool2d(x, 2, padding=pad), F.avg_pool2d(y, 2, padding=pad)
    stack = torch.stack(levels)  # (5, 1, C)
    value = torch.prod(stack ** _WEIGHTS.view(-1, 1, 1), dim=0)
    return float(value.mean())


def miou(pred: np.ndarray, ref: np.ndarray, num_classes: int = 21, ignore: int | None = 255) -> float:
    """Mean IoU in [0, 1] of two integer class maps of equal shape, over the classes present in either.

    Pixels where ``ref == ignore`` (PASCAL VOC's "void" label 255) are left out. Identical maps
    give 1.0; a map that shares no class with the reference gives 0.0. Classes must lie in
    ``[0, num_classes)``.
    """
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"shapes differ: {pred.shape} vs {ref.shape}")
    keep = ref != ignore if ignore is not None else np.ones(ref.shape, bool)
    p, r = pred[keep].astype(np.int64), ref[keep].astype(np.int64)
    if p.size == 0:
        raise ValueError("no pixel to compare (every reference pixel is ignored)")
    for name, m in (("pred", p), ("ref", r)):
        if m.min() < 0 or m.max() >= num_classes:
            raise ValueError(f"{name} has classes outside [0, {num_classes}): {m.min()}..{m.max()}")
    conf = np.bincount(r * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)
    inter = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - inter
    present = union > 0
    return float(np.mean(inter[present] / union[present]))
