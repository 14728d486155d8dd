"""Auxiliary branch: the scalable, distortion-oriented residual layer (paper §3.3).

Three pieces, all trained in stage II with the base codec frozen:

* :class:`ScalableTransform` — 3 convolutions encode the quantization error
  ``y - y_hat`` (B, M, h, w) into ``s`` (B, S, h, w); 3 convolutions decode ``s_hat``
  back to a latent correction so that ``y_hat_2 = y_hat + dec(s_hat)``.
* :class:`ResidualPrior` — the entropy model of ``s``: a mean-scale Gaussian whose
  parameters are predicted from ``y_hat`` (which the decoder already has), so the
  residual layer needs no side information of its own.
* :class:`ResidualReconstruction` — transposed convolutions that upsample ``y_hat_2`` to
  the image, with the synthesis features ``f1, f2, f3`` injected through point-wise
  convolutions; it outputs the residual image ``r`` (B, 3, H, W). ``x_hat_2 = x_hat_1 + r``.
  Optionally (``blocks`` > 0, not in the paper) each scale ends with residual
  :class:`RefineBlock` s: most of what this branch adds at beta = 0 is post-filtering of
  ``y_hat`` with the synthesis features, not the few bits of ``s`` (``docs/training.md``,
  run 5), and the paper's branch has only point-wise layers between its upsamplings.
"""

from __future__ import annotations

import torch
from torch import nn

from .transforms import conv, deconv, refine_stages


def _act() -> nn.Module:
    return nn.LeakyReLU(inplace=True)


class ScalableTransform(nn.Module):
    """``y - y_hat`` -> ``s`` and ``s_hat`` -> latent correction (both at latent resolution)."""

    def __init__(self, M: int, S: int, hidden: int = 96) -> None:
        super().__init__()
        H = hidden
        self.enc = nn.Sequential(conv(M, H, 3, 1), _act(), conv(H, H, 3, 1), _act(), conv(H, S, 3, 1))
        self.dec = nn.Sequential(conv(S, H, 3, 1), _act(), conv(H, H, 3, 1), _act(), conv(H, M, 3, 1))


class ResidualPrior(nn.Module):
    """``y_hat`` (B, M, h, w) -> means, scales of ``s * G_s`` (B, S, h, w) each."""

    def __init__(self, M: int, S: int, hidden: int = 64) -> None:
        super().__init__()
        self.layers = nn.Sequential(conv(M, hidden, 3, 1), _act(), nn.Conv2d(hidden, 2 * S, 1))

    def forward(self, y_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        means, scales = self.layers(y_hat).chunk(2, dim=1)
        return means, scales


class ResidualReconstruction(nn.Module):
    """``y_hat_2`` plus synthesis features -> residual image ``r``.

    ``feature_channels`` are the channel counts of ``f1`` (H/8), ``f2`` (H/4), ``f3`` (H/2);
    ``blocks`` :class:`RefineBlock` s follow each of the three upsamplings (0 = the paper's
    branch; the file format stores the number in the model config).
    """

    def __init__(self, M: int, feature_channels: tuple[int, int, int], widths=(96, 64, 32),
                 blocks: int = 0) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.up = nn.ModuleList([deconv(M, w1), deconv(w1, w2), deconv(w2, w3)])
        self.inject = nn.ModuleList(
            [nn.Conv2d(c, w, 1) for c, w in zip(feature_channels, widths)]
        )
        self.mix = nn.ModuleList([nn.Conv2d(w, w, 1) for w in widths])
        self.refine = refine_stages(list(widths), blocks)
        self.act = _act()
        self.out = deconv(w3, 3)

    def forward(self, y_hat_2: torch.Tensor, feats: list[torch.Tensor],
                detail: torch.Tensor | None = None) -> torch.Tensor:
        """``detail`` (B, widths[0], H/8, W/8), the detail latent's contribution
        (:mod:`.detail`), is added where the first stage reaches H/8."""
        h = y_hat_2
        for i, (up, inject, mix, refine, f) in enumerate(zip(self.up, self.inject, self.mix, self.refine, feats)):
            h = up(h) + inject(f)
            if i == 0 and detail is not None:
                h = h + detail
            h = refine(self.act(mix(self.act(h))))
        return self.out(h)
