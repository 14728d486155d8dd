"""Coding-time forms of the transforms that compute the same functions faster on CPUs.

Training keeps the modules of :mod:`.transforms` (``nn.ConvTranspose2d``, compressai's
``GDN``): the parameters and the file format are unchanged. :func:`coding_copy` builds the
copy used for coding, with two substitutions and channels-last memory layout (oneDNN's
convolutions are 1.3-2.6x faster in it here; per-layer timings in ``docs/model.md``):

* :class:`SubpixelDeconv` for the transposed convolutions with at most 96 output channels;
* :class:`FastGDN` for (inverse) GDN, as one matrix product on channels-last data.

Both are the same functions up to float summation order (``tests/test_fastpath.py``).

With ``bf16=True`` (the synthesis ``g_s`` and the residual reconstruction on CPUs with native
bfloat16 arithmetic, see :func:`bf16_synthesis_default`) the transposed convolutions with more
than 3 outputs also become :class:`Bf16Deconv`: inputs, weights and outputs rounded to
bfloat16, sums in float32. That is a different function, not a reordering: on rdc-v10 and
eight Kodak images it moves PSNR by at most 0.002 dB (``docs/model.md``). Only the pixels
move: the bitstream and every probability model stay in float32 / float64 as before.

Sub-pixel transposed convolution

A stride-2, 5x5 transposed convolution with padding 2 and output padding 1 (``deconv`` in
:mod:`.transforms`) computes, for output row ``o = 2i + a`` (phase ``a`` in {0, 1}),

    out[o] = sum_j  x[j] * W[o - 2j + 2],     0 <= o - 2j + 2 < 5,

so each phase reads only the inputs ``j = i - 1, i, i + 1`` with the kernel taps
``k = a + 2 - 2 (j - i)`` (taps that fall outside 0..4 are zero). The same holds for
columns. The layer is therefore exactly a 3x3, stride-1 convolution with ``4 C_out``
outputs (one per phase pair ``(a, b)``) followed by ``pixel_shuffle(2)``: the same function
up to float summation order. It is 2-2.4x faster than oneDNN's transposed convolution
for the 3-channel output layers, and 1.3-1.5x slower for the wide ones, so only layers
with at most :data:`SUBPIXEL_MAX_OUT` output channels are replaced (see there).
"""

from __future__ import annotations

import copy
import os

import torch
import torch.nn.functional as F
from compressai.layers import GDN
from torch import nn

from ..errors import RdcError


class SubpixelDeconv(nn.Module):
    """``ConvTranspose2d(C_in, C_out, 5, stride=2, padding=2, output_padding=1)`` as
    ``pixel_shuffle(conv3x3(x; 4 C_out), 2)``.

    Shapes: (B, C_in, h, w) -> (B, C_out, 2h, 2w), like the layer it replaces.
    """

    def __init__(self, deconv: nn.ConvTranspose2d) -> None:
        super().__init__()
        if not _is_supported(deconv):
            raise ValueError(f"not a 5x5 stride-2 'same' transposed convolution: {deconv}")
        w = deconv.weight.detach()                      # (C_in, C_out, 5, 5)
        c_in, c_out = w.shape[:2]
        k = w.new_zeros(c_out, 2, 2, c_in, 3, 3)        # (C_out, a, b, C_in, dj, di)
        for a in range(2):
            for b in range(2):
                for dj in range(3):
                    for di in range(3):
                        ky, kx = a + 4 - 2 * dj, b + 4 - 2 * di  # a + 2 - 2 (dj - 1)
                        if ky < 5 and kx < 5:
                            k[:, a, b, :, dj, di] = w[:, :, ky, kx].t()
        # pixel_shuffle reads channel c * 4 + 2a + b as phase (a, b) of output channel c
        self.weight = nn.Parameter(k.reshape(c_out * 4, c_in, 3, 3).contiguous(), requires_grad=False)
        bias = deconv.bias.detach() if deconv.bias is not None else w.new_zeros(c_out)
        self.bias = nn.Parameter(bias.repeat_interleave(4).contiguous(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(F.conv2d(x, self.weight, self.bias, padding=1), 2)


def _out_channels(deconv: nn.Module) -> int:
    return deconv.out_channels if isinstance(deconv, nn.ConvTranspose2d) else deconv.weight.shape[0] // 4


def _is_supported(m: nn.Module) -> bool:
    return (isinstance(m, nn.ConvTranspose2d) and m.kernel_size == (5, 5) and m.stride == (2, 2)
            and m.padding == (2, 2) and m.output_padding == (1, 1) and m.dilation == (1, 1)
            and m.groups == 1)


class FastGDN(nn.Module):
    """compressai's ``GDN`` / inverse GDN with its reparametrized ``beta`` and ``gamma`` frozen.

    ``norm_i = beta_i + sum_j gamma_ij x_j^2``, ``out = x * rsqrt(norm)`` (GDN) or
    ``x * sqrt(norm)`` (inverse). On channels-last data the sum is one matrix product of the
    (B*H*W, C) view, with no 1x1-convolution dispatch and the square roots in place.
    Shapes: (B, C, H, W) -> (B, C, H, W), channels-last.
    """

    def __init__(self, gdn: GDN) -> None:
        super().__init__()
        with torch.no_grad():
            beta = gdn.beta_reparam(gdn.beta).detach()
            gamma = gdn.gamma_reparam(gdn.gamma).detach()
        self.inverse = gdn.inverse
        self.beta = nn.Parameter(beta.contiguous(), requires_grad=False)
        self.gamma_t = nn.Parameter(gamma.reshape(len(beta), -1).t().contiguous(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        v = x.permute(0, 2, 3, 1).reshape(-1, c)  # a view when x is channels-last
        norm = torch.addmm(self.beta, v * v, self.gamma_t)
        norm = norm.sqrt_() if self.inverse else norm.rsqrt_()
        return norm.mul_(v).view(b, h, w, c).permute(0, 3, 1, 2)


#: Transposed convolutions with at most this many output channels become :class:`SubpixelDeconv`:
#: the 3-channel output layers (2-2.4x faster) and the residual branch's 96/64/32-channel layers,
#: for determinism: at some sizes (8x12 and 10x10 latents) oneDNN's transposed convolution
#: splits their sums by thread count, the sub-pixel form never did in a sweep of 10 sizes
#: (1.4x slower on those layers, about 3% of a Kodak decode).
SUBPIXEL_MAX_OUT = 96


class Bf16Deconv(nn.Module):
    """A transposed convolution (``nn.ConvTranspose2d`` or :class:`SubpixelDeconv`) computed in
    bfloat16: the input, the weights and the output are rounded to bfloat16 (oneDNN accumulates
    in float32), the result returned as float32.

    Shapes: (B, C_in, h, w) -> (B, C_out, 2h, 2w) float32, like the layer it replaces.
    """

    def __init__(self, deconv: nn.Module) -> None:
        super().__init__()
        self.inner = copy.deepcopy(deconv).to(torch.bfloat16)
        self.out_channels = _out_channels(deconv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.to(torch.bfloat16)).float()


#: Environment variable that forces the synthesis precision: ``float32`` or ``bfloat16``.
SYNTHESIS_ENV = "RDCODEC_SYNTHESIS"


def bf16_synthesis_default(device: str | torch.device = "cpu") -> bool:
    """Whether :func:`coding_copy` should put the synthesis in bfloat16 by default: on CPUs
    with native bfloat16 instructions (AVX512-BF16 or AMX), where oneDNN runs the wide layers
    about 2x faster (a Kodak decode about 19% faster, ``docs/model.md``). Elsewhere bfloat16
    would be emulated (slower), and CUDA keeps float32. ``RDCODEC_SYNTHESIS=float32`` (or
    ``bfloat16``) overrides the choice; other values raise :class:`~rdcodec.errors.RdcError`.
    """
    forced = os.environ.get(SYNTHESIS_ENV, "").strip().lower()
    if forced in ("float32", "fp32"):
        return False
    if forced in ("bfloat16", "bf16"):
        return True
    if forced:
        raise RdcError(f"{SYNTHESIS_ENV} must be float32 or bfloat16, got '{forced}'")
    if torch.device(device).type != "cpu":
        return False
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


class ChannelsLast(nn.Module):
    """Runs ``inner`` with its first input converted to channels-last (a no-op when it is)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor, *rest):
        return self.inner(x.contiguous(memory_format=torch.channels_last), *rest)


def coding_copy(module: nn.Module, bf16: bool = False) -> nn.Module:
    """A deep copy of ``module`` for coding: eval mode, channels-last, every GDN a
    :class:`FastGDN` and every narrow transposed convolution a :class:`SubpixelDeconv`;
    with ``bf16``, every transposed convolution with more than 3 outputs in bfloat16
    (:class:`Bf16Deconv`): all but the layers that output the image and the residual.

    Called like ``module``; without ``bf16`` it computes what ``module`` computes, up to float
    summation order.
    """
    out = copy.deepcopy(module).eval()
    for child in list(out.modules()):
        for attr, sub in list(child.named_children()):
            if _is_supported(sub) and sub.out_channels <= SUBPIXEL_MAX_OUT:
                sub = SubpixelDeconv(sub)
            elif isinstance(sub, GDN):
                sub = FastGDN(sub)
            if bf16 and isinstance(sub, (nn.ConvTranspose2d, SubpixelDeconv)) and _out_channels(sub) > 3:
                sub = Bf16Deconv(sub)
            setattr(child, attr, sub)
    for p in out.parameters():
        p.requires_grad_(False)
    return ChannelsLast(out.to(memory_format=torch.channels_last))
