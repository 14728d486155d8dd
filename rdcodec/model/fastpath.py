"""Coding-time forms of the transforms that compute the same functions faster on CPUs.

Training keeps the modules of :mod:`.transforms` (``nn.ConvTranspose2d``, compressai's
``GDN``): the parameters and the file format are unchanged. :func:`coding_copy` builds the
copy used for coding, with two substitutions and channels-last memory layout (oneDNN's
convolutions are 1.3-2.6x faster in it here; per-layer timings in ``docs/model.md``):

* :class:`SubpixelDeconv` for the transposed convolutions with at most 96 output channels;
* :class:`FastGDN` for (inverse) GDN, as one matrix product on channels-last data.

Both are the same functions up to float summation order (``tests/test_fastpath.py``).

With ``bf16=True`` (on CPUs with native bfloat16 arithmetic, see :func:`bf16_default`) the
stride-2 layers with more than 3 inputs and outputs also become :class:`Bf16Conv`: inputs,
weights and outputs rounded to bfloat16, sums in float32. In the synthesis ``g_s`` and the
residual reconstruction those are the inner transposed convolutions, in the analysis ``g_a``
the inner convolutions and the last one; the layers that read or write the image stay float32.
That is a different function, not a reordering: in the synthesis it moves PSNR by at most
0.002 dB (rdc-v10, eight Kodak images), in the analysis it moves the coded latents (the files
differ from float32's, and still decode everywhere; ``docs/model.md`` has both measurements).
The probability models stay in float32 / float64 as before.

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


def _channels(m: nn.Module) -> tuple[int, int] | None:
    """(inputs, outputs) of a stride-2 convolution, transposed convolution or
    :class:`SubpixelDeconv` (the layers :class:`Bf16Conv` may replace); None for anything else."""
    if isinstance(m, SubpixelDeconv):
        return m.weight.shape[1], m.weight.shape[0] // 4
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.stride == (2, 2):
        return m.in_channels, m.out_channels
    return None


class Bf16Conv(nn.Module):
    """A stride-2 layer (``nn.Conv2d``, ``nn.ConvTranspose2d`` or :class:`SubpixelDeconv`)
    computed in bfloat16: the input, the weights and the output are rounded to bfloat16 (oneDNN
    accumulates in float32), the result returned as float32.

    Shapes: those of the layer it replaces, float32 out.
    """

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.in_channels, self.out_channels = _channels(layer)
        self.inner = copy.deepcopy(layer).to(torch.bfloat16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.to(torch.bfloat16)).float()


#: Environment variable that forces the precision of the transforms: ``float32`` or ``bfloat16``.
PRECISION_ENV = "RDCODEC_TRANSFORMS"
#: Its name in rdcodec 0.x before the analysis had a bfloat16 form (still read when the new one is unset).
LEGACY_PRECISION_ENV = "RDCODEC_SYNTHESIS"


def bf16_default(device: str | torch.device = "cpu") -> bool:
    """Whether :func:`coding_copy` should put the transforms (``g_a``, ``g_s``, the residual
    reconstruction) in bfloat16 by default: on CPUs with native bfloat16 instructions
    (AVX512-BF16 or AMX), where oneDNN runs the wide layers about 2x faster (``docs/model.md``).
    Elsewhere bfloat16 would be emulated (slower), and CUDA keeps float32.
    ``RDCODEC_TRANSFORMS=float32`` (or ``bfloat16``) overrides the choice; other values raise
    :class:`~rdcodec.errors.RdcError`.
    """
    name = PRECISION_ENV if os.environ.get(PRECISION_ENV, "").strip() else LEGACY_PRECISION_ENV
    forced = os.environ.get(name, "").strip().lower()
    if forced in ("float32", "fp32"):
        return False
    if forced in ("bfloat16", "bf16"):
        return True
    if forced:
        raise RdcError(f"{name} must be float32 or bfloat16, got '{forced}'")
    if torch.device(device).type != "cpu":
        return False
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


#: :class:`MinSize` zero-pads the inputs of the coding layers to at least this many rows and columns.
MIN_SIDE = 16


def _out_size(layer: nn.Module, n: int, dim: int) -> int:
    """Output length along spatial ``dim`` (0 rows, 1 columns) of ``layer`` for an input of length ``n``."""
    if isinstance(layer, SubpixelDeconv):
        return 2 * n
    if isinstance(layer, Bf16Conv):
        return _out_size(layer.inner, n, dim)
    k, s, p, d = layer.kernel_size[dim], layer.stride[dim], layer.padding[dim], layer.dilation[dim]
    if isinstance(layer, nn.ConvTranspose2d):
        return (n - 1) * s - 2 * p + d * (k - 1) + layer.output_padding[dim] + 1
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


class MinSize(nn.Module):
    """Runs a convolution on its input zero-padded at the bottom and right to at least
    :data:`MIN_SIDE` x :data:`MIN_SIDE`, and crops the output back: the same function (explicit
    zeros where the layer's own padding put implicit ones; a transposed convolution's extra
    zero inputs add nothing), computed by an algorithm that does not depend on the thread count.

    On small inputs (up to about 10 x 10 positions on this project's Intel Xeon, e.g. the
    latents of a 128 x 192 image) oneDNN splits a convolution's sums across threads, so 1 and 2
    threads gave outputs one float32 ulp apart; from 12 x 16 up they never differed. Inputs of
    at least :data:`MIN_SIDE` per side pass through unchanged.
    """

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.inner = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h >= MIN_SIDE and w >= MIN_SIDE:
            return self.inner(x)
        xp = F.pad(x, (0, max(0, MIN_SIDE - w), 0, max(0, MIN_SIDE - h)))
        out = self.inner(xp.contiguous(memory_format=torch.channels_last))
        return out[..., :_out_size(self.inner, h, 0), :_out_size(self.inner, w, 1)]


class ChannelsLast(nn.Module):
    """Runs ``inner`` with its first input converted to channels-last (a no-op when it is)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor, *rest):
        return self.inner(x.contiguous(memory_format=torch.channels_last), *rest)


def coding_copy(module: nn.Module, bf16: bool = False) -> nn.Module:
    """A deep copy of ``module`` for coding: eval mode, channels-last, every GDN a
    :class:`FastGDN`, every narrow transposed convolution a :class:`SubpixelDeconv` and every
    convolution wrapped in :class:`MinSize` (thread-count-independent sums on small inputs);
    with ``bf16``, every stride-2 layer with more than 3 inputs and outputs in bfloat16
    (:class:`Bf16Conv`): all but the layers that read or write the image and the residual.

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
            if bf16 and min(_channels(sub) or (0,)) > 3:
                sub = Bf16Conv(sub)
            if isinstance(sub, (nn.Conv2d, nn.ConvTranspose2d, SubpixelDeconv, Bf16Conv)):
                sub = MinSize(sub)
            setattr(child, attr, sub)
    for p in out.parameters():
        p.requires_grad_(False)
    return ChannelsLast(out.to(memory_format=torch.channels_last))
