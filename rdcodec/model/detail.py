"""The detail latent: new image information in the residual layer (not in the paper).

The paper's residual layer (:mod:`.residual`) codes ``y - y_hat``, the quantization error of
the base latent: it can only give back what ``g_a`` already put into ``y``, and at the top
rates that is where the base codec's capacity ends (``docs/training.md``, run 21: the level-5
gains extrapolated buy 0.7 dB for 52% more bits). The detail latent ``e`` is read from the
pixels instead, at a finer grid than ``y``:

    e      = D_a(x, x_hat_1, f1) * G_e                  (B, E, H/8, W/8)
    mu_e, sigma_e = D_p(y_hat)                          (B, E, H/8, W/8) each
    e_hat  = Q(e - mu_e) + mu_e
    d      = D_s(e_hat * G_e^{-1})                      (B, w1, H/8, W/8)

``d`` enters the residual reconstruction where it first reaches H/8 (added before the
activation of its first stage), so ``r`` and Eq. 9 are unchanged: ``x_bar = x_hat_1 +
(1 - beta) r``. The prior reads only ``y_hat``, which the decoder has bit for bit (the
synthesis features are not deterministic across machines), so the layer needs no side
information. ``D_s``'s last convolution starts at zero: a detail latent added to a trained
residual branch starts as exactly that branch.

Shapes for an ``H x W`` input (a multiple of 64), ``M`` channels of ``y``, ``N`` of ``f1``::

    DetailAnalysis  : x, x_hat_1 (B, 3, H, W), f1 (B, N, H/8, W/8) -> e (B, E, H/8, W/8)
    DetailPrior     : y_hat (B, M, H/16, W/16) -> means, scales (B, E, H/8, W/8)
    DetailSynthesis : e_hat (B, E, H/8, W/8) -> d (B, w1, H/8, W/8)
"""

from __future__ import annotations

import torch
from torch import nn

from .transforms import conv, deconv


def _act() -> nn.Module:
    return nn.LeakyReLU(inplace=True)


#: Fixed factor on the analysis output: a freshly initialized analysis gives latents with a
#: standard deviation of about 0.04, which would all round to their mean, so the decoder would
#: never see information to learn from and the rate term would keep it that way (run 27's first
#: start: the layer stayed empty for 2,000 steps). Times 64 they cover several quantization steps.
OUTPUT_SCALE = 64.0

#: Initial scale the prior predicts for ``e * G_e`` (its bias), so that the fresh latents of
#: about that spread do not start at thousands of bits.
INITIAL_SCALE = 1.0


class DetailAnalysis(nn.Module):
    """``(x - x_hat_1, x_hat_1)`` down by 8, plus the synthesis features ``f1`` -> ``e``."""

    def __init__(self, N: int, E: int, hidden: int = 96) -> None:
        super().__init__()
        H = hidden
        self.down = nn.Sequential(conv(6, 64), _act(), conv(64, H), _act(), conv(H, H))
        self.inject = nn.Conv2d(N, H, 1)
        self.out = nn.Sequential(_act(), conv(H, H, 3, 1), _act(), conv(H, E, 3, 1))

    def forward(self, x: torch.Tensor, x_hat_1: torch.Tensor, f1: torch.Tensor) -> torch.Tensor:
        h = self.down(torch.cat([x - x_hat_1, x_hat_1], dim=1))
        return self.out(h + self.inject(f1)) * OUTPUT_SCALE


class DetailPrior(nn.Module):
    """``y_hat`` (B, M, h, w) -> means, scales of ``e * G_e`` (B, E, 2h, 2w) each."""

    def __init__(self, M: int, E: int, hidden: int = 128) -> None:
        super().__init__()
        self.layers = nn.Sequential(deconv(M, hidden), _act(), conv(hidden, hidden, 3, 1), _act(),
                                    nn.Conv2d(hidden, 2 * E, 1))
        with torch.no_grad():
            self.layers[-1].bias[E:] += INITIAL_SCALE

    def forward(self, y_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        means, scales = self.layers(y_hat).chunk(2, dim=1)
        return means, scales


class DetailSynthesis(nn.Module):
    """``e_hat`` (B, E, h, w) -> the residual reconstruction's first-stage input (B, width, h, w)."""

    def __init__(self, E: int, width: int, hidden: int = 96) -> None:
        super().__init__()
        self.layers = nn.Sequential(conv(E, hidden, 3, 1), _act(), conv(hidden, hidden, 3, 1), _act(),
                                    conv(hidden, width, 3, 1))
        nn.init.zeros_(self.layers[-1].weight)
        nn.init.zeros_(self.layers[-1].bias)

    def forward(self, e_hat: torch.Tensor) -> torch.Tensor:
        return self.layers(e_hat)
