"""The machine head: the base layer's image for vision networks (not in the paper).

Stage I (paper Eq. 7) trains ``g_s`` on rate, the contrastive ``C`` and, here, an MSE anchor, so
``x_hat_1`` is a compromise the rate term also pulls on: runs 18-26 (``docs/training.md``) moved
that loss and the encoder and each landed on the same accuracy-rate curve, where from
alpha = 0.5 up the beta = 0 image served the classifiers as well as ``x_hat_1`` or better. The
machine head is a small network on ``x_hat_1``'s pixels, trained alone with everything else
frozen (stage ``head``, :mod:`rdcodec.train.loop`) on the feature distance ``D_feat`` of the
MobileNetV1 extractor (:mod:`rdcodec.vision.features`) and a weak MSE anchor. It costs no bits:

    x_hat_1^m = P(x_hat_1) = x_hat_1 + S(U(B(D(x_hat_1))))          (B, 3, H, W)

with ``D`` a space-to-depth by 2 (12 channels at H/2) and a 3x3 convolution to ``C`` channels,
``B`` a few :class:`~.transforms.RefineBlock` s, ``U`` a 3x3 convolution back to 12 channels
and ``S`` the depth-to-space; ``U`` starts at zero, so a fresh head is the identity.

With a head the base layer decodes to ``x_hat_1^m`` and the residual is re-expressed against
it, so that the beta = 0 image (what eyes get) is unchanged bit for bit:

    r^m   = (x_hat_1 + r) - x_hat_1^m
    x_bar = x_hat_1^m + (1 - beta) r^m  =  beta x_hat_1^m + (1 - beta) (x_hat_1 + r)   (Eq. 9)

(``rdcodec.codec.Reconstruction.render``, which runs the head only for a beta above 0: the
default beta = 0 decode costs what it did without a head). A file without a residual layer
decodes to ``x_hat_1^m`` at every beta. The head reads 2 + 2 x blocks positions at H/2 around each
output position (17 pixels with 3 blocks; :data:`HALO` suffices), so tall images run it in stripes
(:func:`apply_in_stripes`).

A head with ``levels`` (``ModelConfig.head_gains``) is conditioned on alpha by per-level channel
gains, interpolated like the gain units' (:class:`MachineHead`); the decoder reads alpha from the
file's header.

The same network, reading ``P(x_hat_1)`` beside its input (``inputs=6``), is the **eye head**
``E`` (``ModelConfig.eye_head``): trained on MSE alone (stage ``eye``), it makes the beta = 0 image
from the two images the decoder has (:meth:`rdcodec.model.rdc.RDCModel.eye_image`)::

    x_eye = E(x_s, P(x_hat_1)) = x_s + S(U(G_out B(G_in D(x_s, P(x_hat_1)))))
    x_s   = x_hat_1 + r + c (P(x_hat_1) - x_hat_1 - r)          (c: the eye share, or 0)

It starts as the identity too, so a fresh eye head leaves the beta = 0 image as it was.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .gain import interpolate_levels
from .transforms import RefineBlock

#: Rows of context a stripe of :func:`apply_in_stripes` takes from each side (even, and more than
#: the head's reach of 2 * (2 + 2 * blocks) pixels for up to :data:`MAX_HEAD_BLOCKS` blocks).
HALO = 32

#: The most :class:`~.transforms.RefineBlock` s a head may have: its reach, 2 * (2 + 2 * blocks)
#: pixels, must stay within :data:`HALO`.
MAX_HEAD_BLOCKS = (HALO // 2 - 2) // 2 - 1

#: Rows per stripe of :func:`apply_in_stripes` (even).
STRIPE = 256


class MachineHead(nn.Module):
    """``x_hat_1`` (B, 3, H, W), H and W even -> ``x_hat_1^m`` (B, 3, H, W).

    With ``levels`` > 0 the head is conditioned on alpha like the codec's gain units (paper Eq. 3,
    :mod:`.gain`): per-level channel gains ``G_in`` after ``D`` and ``G_out`` before ``U``, stored as
    logs (L, C) and interpolated exponentially between the trained levels::

        P(x_hat_1; alpha) = x_hat_1 + S(U(G_out(alpha) B(G_in(alpha) D(x_hat_1))))

    They start at 1, so such a head starts as the same head without them.
    """

    def __init__(self, channels: int, blocks: int = 3, levels: int = 0, inputs: int = 3) -> None:
        super().__init__()
        self.inp = nn.Conv2d(4 * inputs, channels, 3, padding=1)
        self.body = nn.Sequential(*[RefineBlock(channels) for _ in range(blocks)])
        self.out = nn.Conv2d(channels, 12, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.log_gain_in = nn.Parameter(torch.zeros(levels, channels)) if levels else None
        self.log_gain_out = nn.Parameter(torch.zeros(levels, channels)) if levels else None

    @property
    def conditioned(self) -> bool:
        """Whether the head takes alpha (per-level gains)."""
        return self.log_gain_in is not None

    def forward(self, x_hat_1: torch.Tensor, alpha: torch.Tensor | None = None,
                side: torch.Tensor | None = None) -> torch.Tensor:
        """``alpha`` (B,) or (1,) in [0, 1]: required by a :attr:`conditioned` head, ignored otherwise.
        ``side`` (B, inputs - 3, H, W): further images the head reads beside its input (the eye
        head's ``P(x_hat_1)``), required when it was built with ``inputs`` > 3."""
        u = x_hat_1 if side is None else torch.cat([x_hat_1, side.to(x_hat_1.dtype)], 1)
        h = F.leaky_relu(self.inp(F.pixel_unshuffle(u, 2)), inplace=True)
        if self.conditioned:
            if alpha is None:
                raise ValueError("this machine head is conditioned on alpha: pass alpha")
            h = h * interpolate_levels(self.log_gain_in, alpha).exp().to(h.dtype)[:, :, None, None]
        h = F.leaky_relu(self.body(h))
        if self.conditioned:
            h = h * interpolate_levels(self.log_gain_out, alpha).exp().to(h.dtype)[:, :, None, None]
        return x_hat_1 + F.pixel_shuffle(self.out(h), 2).to(x_hat_1.dtype)


def apply_even(head: nn.Module, x: torch.Tensor, alpha: torch.Tensor | None = None,
               side: torch.Tensor | None = None) -> torch.Tensor:
    """``head(x, alpha, side)`` on (B, 3, H, W) of any size: odd sides are padded by one replicated
    row or column (space-to-depth needs even ones) and the output is cropped back."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
        side = None if side is None else F.pad(side, (0, w % 2, 0, h % 2), mode="replicate")
    return (head(x, alpha) if side is None else head(x, alpha, side))[..., :h, :w]


def apply_in_stripes(head: nn.Module, x: torch.Tensor, alpha: torch.Tensor | None = None,
                     side: torch.Tensor | None = None, stripe: int = STRIPE, halo: int = HALO) -> torch.Tensor:
    """``apply_even(head, x, alpha, side)`` computed on horizontal stripes of ``stripe`` rows with
    ``halo`` rows of context each side: the same result (up to float summation order) in memory
    that grows with the width only."""
    h = x.shape[-2]
    if h <= stripe + 2 * halo:
        return apply_even(head, x, alpha, side)
    out = torch.empty_like(x)
    for top in range(0, h, stripe):
        lo, hi = max(0, top - halo), min(h, top + stripe + halo)
        part = apply_even(head, x[..., lo:hi, :], alpha, None if side is None else side[..., lo:hi, :])
        out[..., top:min(h, top + stripe), :] = part[..., top - lo:top - lo + min(stripe, h - top), :]
    return out
