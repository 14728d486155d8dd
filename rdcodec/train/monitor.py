"""A short Kodak evaluation during training: model-estimated bpp and PSNR at a few levels.

No entropy coding: the model runs in ``eval()`` mode, so latents are rounded and the bits are
the entropy models' estimate of the coded size (the real files are within 1% of it, see
``tests/test_codec.py``). Cheap enough to run every few thousand steps (about 10 s for four
Kodak images on two cores) and log beside the losses:

    {"event": "eval", "step": 12000, "levels": [0, 2, 5],
     "bpp": [...], "psnr_b1": [...], "bpp_res": [...], "psnr_b0": [...]}

``psnr_b1`` is x̂1 (β = 1, base layer only); ``bpp_res``/``psnr_b0`` add the residual layer
(β = 0, Eq. 9) and are reported in stage ``residual`` only, where that branch is trained.
A model with a machine head (:mod:`rdcodec.model.head`) also reports ``psnr_m``, of ``P(x̂1)``, and
one with an eye share or eye head ``psnr_eye``, of its β = 0 image (with the residual layer).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..model.gain import level_alpha
from ..model.rdc import RDCModel

DEFAULT_LEVELS = (0, 2, 5)


def load_eval_images(folder: str | Path, count: int) -> list[torch.Tensor]:
    """``count`` images spread evenly over the sorted PNGs of ``folder``, as (1, 3, H, W) in [0, 1].

    Sizes are cropped down to a multiple of 64 (Kodak's 768x512 is unchanged).
    """
    files = sorted(Path(folder).glob("*.png"))
    if not files:
        raise FileNotFoundError(f"no PNG images in {folder}")
    step = max(1, len(files) // max(1, count))
    images = []
    for f in files[::step][:count]:
        with Image.open(f) as im:
            a = np.asarray(im.convert("RGB"))
        h, w = a.shape[0] // 64 * 64, a.shape[1] // 64 * 64
        images.append(torch.from_numpy(a[:h, :w].copy()).permute(2, 0, 1)[None].float() / 255)
    return images


def _psnr(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    return -10 * math.log10(max(float((x_hat.clamp(0, 1) - x).pow(2).mean()), 1e-12))


@torch.no_grad()
def quick_eval(model: RDCModel, images: list[torch.Tensor], levels=DEFAULT_LEVELS,
               residual: bool = False) -> dict[str, list[float]]:
    """Mean estimated bpp and PSNR over ``images`` at each trained level (float32, no autocast).

    Restores the model's train/eval mode afterwards.
    """
    was_training = model.training
    model.eval()
    keys = (["bpp", "psnr_b1"] + (["bpp_res", "psnr_b0"] if residual else [])
            + (["psnr_m"] if model.head is not None else [])
            + (["psnr_eye"] if residual and (model.eye_share is not None or model.eye_head is not None) else []))
    sums = {k: [0.0] * len(levels) for k in keys}
    try:
        idx = torch.tensor(list(levels))
        for x in images:  # all levels as one batch: g_a, h_a, ... run once per image
            x = x.expand(len(levels), -1, -1, -1).contiguous(memory_format=torch.channels_last)
            pixels = x.shape[-1] * x.shape[-2]
            if residual:
                o = model.forward_residual(x, idx)
                x_hat_1, base_bits = o["x_hat_1"], o["bits_base"]
            else:
                o = model.forward_base(x, idx)
                x_hat_1, base_bits = o["x_hat"], o["bits_y"] + o["bits_z"]
            for j in range(len(levels)):
                sums["bpp"][j] += float(base_bits[j]) / pixels
                sums["psnr_b1"][j] += _psnr(x_hat_1[j], x[j])
                alpha = level_alpha(levels[j])
                if model.head is not None:
                    x_m = model.machine_image(x_hat_1[j:j + 1], alpha)
                    sums["psnr_m"][j] += _psnr(x_m[0], x[j])
                if residual:
                    sums["bpp_res"][j] += float(o["bits_s"][j]) / pixels
                    sums["psnr_b0"][j] += _psnr(x_hat_1[j] + o["r"][j], x[j])
                    if "psnr_eye" in sums:
                        x_eye = model.eye_image(x_hat_1[j:j + 1] + o["r"][j:j + 1], x_m, alpha)
                        sums["psnr_eye"][j] += _psnr(x_eye[0], x[j])
    finally:
        model.train(was_training)
    return {"levels": list(levels), **{k: [round(v / len(images), 4) for v in vals] for k, vals in sums.items()}}
