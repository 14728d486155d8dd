"""Analysis / synthesis transforms of the base codec (paper Eq. 2).

A mean-scale hyperprior in the style of Minnen et al. 2018 ("mbt2018-mean"): four
stride-2 5x5 convolutions with GDN for ``g_a``, the mirror image with inverse GDN for
``g_s``, and a three-layer hyper path. See ``docs/model.md`` for why this replaces the
paper's TIC transformer on a CPU.

Shapes (``N`` hidden channels, ``M`` latent channels, input ``H x W`` divisible by 64)::

    g_a : (B, 3, H, W)          -> y      (B, M, H/16, W/16)
    g_s : (B, M, H/16, W/16)    -> x_hat  (B, 3, H, W)  and features f1, f2, f3
    h_a : (B, M, H/16, W/16)    -> z      (B, N, H/64, W/64)
    h_s : (B, N, H/64, W/64)    -> means, scales (B, M, H/16, W/16) each
"""

from __future__ import annotations

import torch
from compressai.layers import GDN
from torch import nn


def conv(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    """Convolution with "same" padding and the given stride."""
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2)


def deconv(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """Transposed convolution that upsamples exactly by ``stride``."""
    return nn.ConvTranspose2d(
        in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1
    )


class RefineBlock(nn.Module):
    """``h + conv3x3(act(conv3x3(h)))`` at one scale, (B, C, h, w) -> (B, C, h, w).

    The second convolution starts at zero, so a block added to a trained transform starts as
    the identity and the transform computes exactly what it did before (a warm start).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(channels, channels, 3, 1), nn.LeakyReLU(inplace=True),
                                  conv(channels, channels, 3, 1))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.body(h)


def refine_stages(widths: list[int], blocks: int) -> nn.ModuleList:
    """One ``nn.Sequential`` of ``blocks`` :class:`RefineBlock` s per scale, of ``widths[i]``
    channels each (empty, i.e. the identity, for ``blocks = 0``); indexed ``[scale][block]``."""
    return nn.ModuleList([nn.Sequential(*[RefineBlock(w) for _ in range(blocks)]) for w in widths])


class AnalysisTransform(nn.Module):
    """``g_a``: image -> latent ``y`` (downsampling by 16).

    ``blocks`` :class:`RefineBlock` s follow the GDN at H/4 and the one at H/8 (0 = the paper's
    and mbt2018's transform; not in the paper). They add depth only where the encoder runs: the
    decoder, and so every file's format, is the same for any number of them.
    """

    def __init__(self, N: int, M: int, blocks: int = 0) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M)
        )
        self.refine = refine_stages([N, N], blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.layers
        h = self.refine[0](f[3](f[2](f[1](f[0](x)))))  # H/4
        h = self.refine[1](f[5](f[4](h)))  # H/8
        return f[6](h)


class SynthesisTransform(nn.Module):
    """``g_s``: latent ``y_hat`` -> image ``x_hat_1``.

    Also returns the intermediate features ``f1`` (H/8, after the first stage), ``f2``
    (H/4) and ``f3`` (H/2) that the residual reconstruction network uses as priors
    (paper §3.3).

    ``blocks`` :class:`RefineBlock` s follow the inverse GDN at H/8 and the one at H/4 (0 = the
    paper's and mbt2018's transform; not in the paper), the mirror of :class:`AnalysisTransform`'s;
    ``f1`` and ``f2`` are taken after them. Unlike the analysis blocks they change the decoder,
    so the number is part of the weights' decoder config.
    """

    def __init__(self, N: int, M: int, blocks: int = 0) -> None:
        super().__init__()
        self.up1 = nn.Sequential(deconv(M, N), GDN(N, inverse=True))
        self.up2 = nn.Sequential(deconv(N, N), GDN(N, inverse=True))
        self.up3 = nn.Sequential(deconv(N, N), GDN(N, inverse=True))
        self.up4 = deconv(N, 3)
        self.refine = refine_stages([N, N], blocks)

    def forward(self, y_hat: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        f1 = self.refine[0](self.up1(y_hat))  # H/8
        f2 = self.refine[1](self.up2(f1))  # H/4
        f3 = self.up3(f2)
        return self.up4(f3), [f1, f2, f3]


class HyperAnalysis(nn.Module):
    """``h_a``: gained latent ``y * G_y`` (B, M, h, w) -> hyper-latent ``z`` (B, N, ceil(h/4), ceil(w/4)).

    A latent whose sides are not multiples of 4 (an image on the 32-pixel grid, format versions 4 and 5)
    is first edge-replicated to the next multiple; on the 64-pixel grid and in training this
    changes nothing. Only the encoder runs ``h_a``, so this is not part of the format.
    """

    def __init__(self, N: int, M: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            conv(M, N, 3, 1), nn.LeakyReLU(inplace=True),
            conv(N, N), nn.LeakyReLU(inplace=True),
            conv(N, N),
        )

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        h, w = y.shape[-2:]
        if h % 4 or w % 4:
            y = nn.functional.pad(y, (0, -w % 4, 0, -h % 4), mode="replicate")
        return self.layers(y)


class HyperSynthesis(nn.Module):
    """``h_s``: ``z_hat`` -> Gaussian ``means`` and ``scales`` of the gained latent.

    Runs in float64 on the CPU at coding time so that encoder and decoder derive the
    same entropy-model parameters (see ``rdcodec.entropy.gaussian``).
    """

    def __init__(self, N: int, M: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            deconv(N, M), nn.LeakyReLU(inplace=True),
            deconv(M, M * 3 // 2), nn.LeakyReLU(inplace=True),
            conv(M * 3 // 2, M * 2, 3, 1),
        )

    def forward(self, z_hat: torch.Tensor, size: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``z_hat`` (B, N, hz, wz) -> (means, scales) (B, M, 4 hz, 4 wz), cut to the latent's
        ``size`` = (h, w) when given (a latent that is not a multiple of 4 positions, see
        :class:`HyperAnalysis`)."""
        means, scales = self.layers(z_hat).chunk(2, dim=1)
        if size is not None:
            means, scales = means[..., :size[0], :size[1]], scales[..., :size[0], :size[1]]
        return means, scales
