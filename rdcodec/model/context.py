"""Checkerboard context model (He et al., CVPR 2021), as a refinement of the hyperprior.

Not in the paper, whose TIC base codes ``y`` with a hyperprior alone. The latent positions
are split like a checkerboard::

    anchor(i, j)  =  (i + j) even          (B, 1, h, w) bool, :func:`anchor_mask`

Anchors are coded first with the hyperprior's parameters ``mu_h, sigma_h = h_s(z_hat)``,
unchanged. Every other position is coded second, with parameters that also see the decoded
anchor symbols around it::

    q      = round(y G_y - mu_h) at anchors, 0 elsewhere          (B, M, h, w) integers
    c      = ctx(q)                                                5x5 conv, (B, K, h, w)
    d_mu, d_log_sigma = params(c, log sigma_h)                     1x1 convs, (B, M, h, w) each
    mu     = mu_h + d_mu,   sigma = sigma_h * exp(d_log_sigma)     at the non-anchors

Because ``q`` is zero at the non-anchors, a non-anchor output of the plain 5x5 convolution
reads only anchors (the 12 taps at odd offsets): no kernel mask is needed. Its input is the
integer anchor *symbols*, so the decoder feeds it exactly what the encoder did.

The last layer of ``params`` starts at zero: an untrained context model reproduces the
hyperprior exactly (tested), so it can be trained on top of a frozen base (stage
``context``) or jointly with it, and never starts worse than the model without it.

Decoding cost: the two-pass order of He et al. (all anchors, then all non-anchors), so
both passes are one range-coder call and one batched network evaluation each.
"""

from __future__ import annotations

import torch
from torch import nn

#: Lower bound of Gaussian scales (compressai's GaussianConditional and the coding scale table).
SCALE_BOUND = 0.11


def anchor_mask(height: int, width: int, device=None) -> torch.Tensor:
    """(1, 1, height, width) bool, True at the anchors ``(i + j) % 2 == 0``."""
    i = torch.arange(height, device=device)[:, None]
    j = torch.arange(width, device=device)[None, :]
    return ((i + j) % 2 == 0)[None, None]


def parameter_mlp(inputs: int, width: int, outputs: int) -> nn.Sequential:
    """Three 1x1 convolutions with LeakyReLU, the last one zero: a refinement that starts as no change."""
    mlp = nn.Sequential(
        nn.Conv2d(inputs, width, 1), nn.LeakyReLU(inplace=True),
        nn.Conv2d(width, width, 1), nn.LeakyReLU(inplace=True),
        nn.Conv2d(width, outputs, 1),
    )
    nn.init.zeros_(mlp[-1].weight)
    nn.init.zeros_(mlp[-1].bias)
    return mlp


class CheckerboardContext(nn.Module):
    """``(anchor symbols, mu_h, sigma_h)`` -> ``(mu, sigma)`` of every position.

    Shapes: all inputs and outputs (B, M, h, w). Anchors keep ``mu_h, sigma_h``.
    """

    def __init__(self, M: int, hidden: int = 128, width: int = 256, kernel: int = 5) -> None:
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"context kernel must be odd, got {kernel}")
        self.ctx = nn.Conv2d(M, hidden, kernel, padding=kernel // 2)
        self.params = parameter_mlp(hidden + M, width, 2 * M)

    def forward(self, anchor_symbols: torch.Tensor, means_h: torch.Tensor,
                scales_h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        anchor = anchor_mask(*means_h.shape[-2:], device=means_h.device)
        q = anchor_symbols.masked_fill(~anchor, 0.0)
        log_s = scales_h.clamp_min(SCALE_BOUND).log()
        d_mu, d_log = self.params(torch.cat([self.ctx(q), log_s], dim=1)).chunk(2, dim=1)
        means = torch.where(anchor, means_h, means_h + d_mu)
        scales = torch.where(anchor, scales_h, (log_s + d_log).exp())
        return means, scales


class PhasedContext(nn.Module):
    """Coding-time form of a :class:`CheckerboardContext`: the same function, computed only
    where it is used.

    The training form evaluates the 5x5 convolution and the 1x1 layers at every position and
    keeps the non-anchors. Split the latent into its four 2x2 phases ``(p, q)`` (rows
    ``p::2``, columns ``q::2``): the anchors are phases (0, 0) and (1, 1), the non-anchors
    (0, 1) and (1, 0). A tap ``(di, dj)`` of the 5x5 kernel that reads an anchor of phase
    ``(r, s)`` from non-anchor phase ``(p, q)`` lands at offset ``((p + di - r) / 2,
    (q + dj - s) / 2)`` in ``{-1, 0, 1}^2`` of that phase's grid, so each non-anchor phase is a
    3x3 convolution of the two anchor phases stacked (2M channels), and the 1x1 layers run on
    the non-anchor phases only: about a third of the multiply-adds (``docs/model.md``).
    Latent sides are even (multiples of 4), so the phases tile the latent exactly.
    """

    NON_ANCHORS = ((0, 1), (1, 0))
    ANCHORS = ((0, 0), (1, 1))

    def __init__(self, ctx: CheckerboardContext) -> None:
        super().__init__()
        w = ctx.ctx.weight.detach()  # (K, M, k, k)
        k = w.shape[-1]
        if k != 5:
            raise ValueError(f"PhasedContext is derived for 5x5 context kernels, got {k}x{k}")
        hidden, M = w.shape[:2]
        kernels = []
        for p, q in self.NON_ANCHORS:
            kern = w.new_zeros(hidden, 2, M, 3, 3)
            for a, (r, s) in enumerate(self.ANCHORS):
                for di in range(-2, 3):
                    for dj in range(-2, 3):
                        if (p + di - r) % 2 or (q + dj - s) % 2:
                            continue  # that tap reads the other anchor phase (or a non-anchor)
                        kern[:, a, :, (p + di - r) // 2 + 1, (q + dj - s) // 2 + 1] = w[:, :, di + 2, dj + 2]
            kernels.append(kern.reshape(hidden, 2 * M, 3, 3))
        self.register_buffer("kernels", torch.stack(kernels))  # (2, K, 2M, 3, 3)
        self.register_buffer("bias", ctx.ctx.bias.detach().clone())
        self.params = ctx.params

    def forward(self, anchor_symbols: torch.Tensor, means_h: torch.Tensor,
                scales_h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = means_h.shape[-2:]
        if h % 2 or w % 2:
            raise ValueError(f"latent sides must be even, got {h}x{w}")
        anchors = torch.cat([anchor_symbols[:, :, r::2, s::2] for r, s in self.ANCHORS], dim=1)
        log_s = scales_h.clamp_min(SCALE_BOUND).log()
        means, scales = means_h.clone(), scales_h.clone()
        for kern, (p, q) in zip(self.kernels, self.NON_ANCHORS):
            c = torch.nn.functional.conv2d(anchors, kern, self.bias, padding=1)
            ls = log_s[:, :, p::2, q::2]
            d_mu, d_log = self.params(torch.cat([c, ls], dim=1)).chunk(2, dim=1)
            means[:, :, p::2, q::2] += d_mu
            scales[:, :, p::2, q::2] = (ls + d_log).exp()
        return means, scales
