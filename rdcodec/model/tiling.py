"""Spatial tiling of the big transforms, so that large images code in bounded memory.

``g_a`` and ``g_s`` + the residual reconstruction network ``rrn`` are fully convolutional and
run at up to full resolution with 128 channels: on a 24-megapixel image the first layer of
``g_a`` alone is about 3 GB in float32, and ``g_s``'s last features ``f3`` (128 channels at
H/2) another 3 GB. Above :data:`MIN_TILED_PIXELS` both run tile by tile instead; the hyper
path (1/64 of the resolution), the residual latent transforms (1/16) and entropy coding
stay whole.

Tiles
    The latent grid (``H/16 x W/16`` of the padded image) is cut into
    ``ceil(n / TILE)`` near-equal spans per axis (``TILE`` = 64 latent positions, 1024
    pixels). The tiling depends only on the image size, never on the machine or the
    memory available, so the bitstream depends only on the image and alpha.

Halo (from the receptive field)
    Every tile is computed with ``HALO`` = 2 extra latent positions (32 pixels) on each
    side that are not clipped by the image border, and only its core is kept. Why 2:

    * ``g_a``: four 5x5 convolutions, stride 2, padding 2; GDN is point-wise. Latent
      ``i`` depends on layer-``l`` positions ``2^(4-l) i - (2^(5-l) - 2) ..
      2^(4-l) i + (2^(5-l) - 2)``: ``2i±2`` (H/8), ``4i±6`` (H/4), ``8i±14`` (H/2) and
      pixels ``16i-30 .. 16i+30`` (receptive field 61 = 1 + 4 (1 + 2 + 4 + 8)). A tile
      core ``[a, b)`` computed from pixels ``[16a - 16 HALO, 16b + 16 HALO)`` (16-aligned,
      so every stride-2 phase matches the whole image) sees every one of those positions
      inside the tile at every layer when ``16 HALO >= 30``, i.e. ``HALO >= 2`` (the
      right side needs only ``16 HALO >= 15``).
    * ``g_s`` and ``rrn``: four 5x5 transposed convolutions, stride 2, padding 2, output
      padding 1; the rest is point-wise (inverse GDN, LeakyReLU, 1x1 convolutions that
      inject ``f1, f2, f3``). Output ``o`` of such a layer depends on inputs
      ``ceil((o-2)/2) .. floor((o+2)/2)``. The pixels ``[16a, 16b)`` of a tile core thus
      need ``f3`` at ``[8a-1, 8b]``, ``f2`` at ``[4a-1, 4b+1]``, ``f1`` at ``[2a-1, 2b+1]``
      and the latent at ``[a-1, b+1]`` (plus the same positions of ``f1..f3`` for the
      injections, which need nothing further). A tile computed from latents
      ``[a - HALO, b + HALO)`` holds all of them when ``b + 1 <= b + HALO - 1``, again
      ``HALO >= 2``. (``y_hat_2 = y_hat + dec(s_hat)`` is computed whole at latent
      resolution before tiling, so the 3x3 convolutions of ``dec`` add nothing.)

    ``rrn`` with ``blocks`` refinement blocks per scale (two 3x3 convolutions each, so
    ±2 positions per block at that scale) needs more: :func:`synthesis_halo` carries the
    needed interval back through the layers (4 for one block per scale, 6 for two), and the
    synthesis uses that halo. Likewise ``g_a`` with ``blocks`` refinement blocks at H/4 and
    H/8 (:func:`analysis_halo`: 4 for one block per scale, 5 for two).

    Within a tile, values near its cut edges are wrong (zero padding stands in for the
    neighbours), but none of them reach the kept core, so a tiled result equals the
    untiled one up to float rounding (different matrix sizes may sum in a different
    order; ``tests/test_tiling.py`` measures it). At the image border tiles stop at the
    border and see the same zero padding as the whole image.

Threshold
    Padded images of at most :data:`MIN_TILED_PIXELS` (4 MP, e.g. 2048 x 2048) run
    untiled, exactly as before tiling existed (same bytes, same pixels). Above it, every
    tile's working set is bounded: a 1088 x 1088 pixel window, about 150 MB per 128-channel
    feature map at H/2, so peak memory grows only with the whole-image tensors (input,
    latents, the two float32 output planes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import numpy as np
import torch
from torch import nn

#: Latent positions per tile side (x 16 = 1024 pixels).
TILE = 64
#: Latent positions of overlap on each side of a tile (x 16 = 32 pixels); see the module docstring.
HALO = 2
#: Padded images with more pixels than this are tiled; smaller ones run whole.
MIN_TILED_PIXELS = 1 << 22
#: Pixels per latent position (total stride of g_a / g_s).
STRIDE = 16

#: Extra halo (latent positions) of a synthesis with a detail latent: its decoder's three 3x3
#: convolutions at H/8 read 3 positions there to each side, 1.5 latent positions (:mod:`.detail`).
DETAIL_HALO = 2

Clock = Callable[[str], AbstractContextManager]


def is_tiled(height: int, width: int) -> bool:
    """Whether a padded ``height x width`` image is coded tile by tile."""
    return height * width > MIN_TILED_PIXELS


def spans(n: int, tile: int) -> list[tuple[int, int]]:
    """``range(n)`` cut into ``ceil(n / tile)`` consecutive near-equal spans."""
    k = max(1, -(-n // tile))
    bounds = [i * n // k for i in range(k + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def synthesis_halo(blocks: int, synthesis_blocks: int = 0) -> int:
    """Latent halo that ``g_s`` + ``rrn`` with ``blocks`` refinement blocks per scale of ``rrn``
    and ``synthesis_blocks`` at H/4 and H/8 of ``g_s`` need.

    Walks back from a tile core's pixels ``[16a, 16b)``: at every level the needed span is
    ``[s a - L, s b - 1 + R]`` (``s`` the level's pixels per position). A stride-2 5x5
    transposed convolution maps outputs ``[o_lo, o_hi]`` to inputs
    ``[ceil((o_lo - 2) / 2), floor((o_hi + 2) / 2)]``, i.e. ``L -> floor((L + 2) / 2)``,
    ``R -> floor((R + 1) / 2) + 1``; a refinement block widens both sides by 2. The halo is
    the larger side at the latent level: 2 without blocks, as derived above. ``g_s``'s blocks
    widen what its features ``f2`` (H/4) and ``f1`` (H/8) need on top of ``rrn``'s (exact for
    ``g_s`` alone, an upper bound with both).
    """
    left = right = 0
    for level in range(4):  # the output layer, then the three upsamplings (H/2, H/4, H/8)
        if level > 0:
            widen = 2 * (blocks + (synthesis_blocks if level > 1 else 0))  # blocks after that upsampling
            left, right = left + widen, right + widen
        left, right = (left + 2) // 2, (right + 1) // 2 + 1
    return max(left, right)


def analysis_halo(blocks: int) -> int:
    """Latent halo that ``g_a`` with ``blocks`` refinement blocks at H/4 and at H/8 needs.

    Walks from a latent position out to the pixels it reads, on its left (the wider) side: a
    stride-2 5x5 convolution needs inputs ``2o - 2 .. 2o + 2``, so ``L -> 2 L + 2``; a refinement
    block widens by 2 at its scale. ``L`` = 2, 6, 14, 30 at H/8, H/4, H/2 and the pixels without
    blocks (as derived above), 30 + 24 ``blocks`` with them, and a tile needs ``16 HALO >= L``.
    """
    left = 0
    for level in range(4):  # from the latent back through the four convolutions
        left = 2 * left + 2
        if level in (0, 1):  # the blocks at H/8, then H/4, read this level's neighbours
            left += 2 * blocks
    return -(-left // STRIDE)


def tiles(hl: int, wl: int, tiled: bool, halo: int | None = None) -> Iterator[tuple[slice, slice, slice, slice]]:
    """Latent tiles of an ``hl x wl`` grid: (core rows, core cols, window rows, window cols).

    The window is the core widened by ``halo`` (default :data:`HALO`) and clipped to the
    grid. Without tiling there is one tile, the whole grid.
    """
    halo = HALO if halo is None else halo
    tile = TILE if tiled else max(hl, wl, 1)
    for a, b in spans(hl, tile):
        for c, d in spans(wl, tile):
            yield (slice(a, b), slice(c, d),
                   slice(max(a - halo, 0), min(b + halo, hl)), slice(max(c - halo, 0), min(d + halo, wl)))


def analysis(g_a: nn.Module, padded: np.ndarray, device: torch.device, blocks: int = 0) -> torch.Tensor:
    """``y = g_a(x)`` tile by tile; ``padded`` is the (H, W, 3) uint8 image, H and W multiples of 16,
    ``blocks`` the refinement blocks per scale of ``g_a`` (from the model config)."""
    hl, wl = padded.shape[0] // STRIDE, padded.shape[1] // STRIDE
    y = None
    for rows, cols, wr, wc in tiles(hl, wl, tiled=True, halo=analysis_halo(blocks)):
        px = padded[wr.start * STRIDE:wr.stop * STRIDE, wc.start * STRIDE:wc.stop * STRIDE]
        x = torch.from_numpy(np.ascontiguousarray(px)).to(device).permute(2, 0, 1)[None].float() / 255.0
        yt = g_a(x)
        if y is None:
            y = yt.new_empty(1, yt.shape[1], hl, wl)
        y[..., rows, cols] = yt[..., rows.start - wr.start:rows.stop - wr.start,
                                cols.start - wc.start:cols.stop - wc.start]
    return y


def synthesis(g_s: nn.Module, rrn: nn.Module, y_hat: torch.Tensor, y_hat_2: torch.Tensor | None,
              height: int, width: int, clock: Clock,
              blocks: int = 0, synthesis_blocks: int = 0,
              detail: Callable[[slice, slice], torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``x_hat_1 = g_s(y_hat)`` and ``r = rrn(y_hat_2; f1, f2, f3)`` (None without ``y_hat_2``).

    Both are cropped to ``height x width``. Tiled when the padded image is over the
    threshold; ``clock("synthesis")`` and ``clock("residual")`` time the two networks.
    ``blocks`` and ``synthesis_blocks`` are the model config's ``rrn_blocks`` and
    ``synthesis_blocks`` (:func:`synthesis_halo`). ``detail`` (with ``y_hat_2``) gives the
    detail latent's decoded contribution for a window of latent rows and columns, at twice
    their resolution (:mod:`.detail`); its three 3x3 convolutions at H/8 add
    :data:`DETAIL_HALO` to the halo.
    """
    hl, wl = y_hat.shape[-2:]
    x_out = r_out = None
    halo = synthesis_halo(blocks, synthesis_blocks)  # from the model config: coding copies wrap rrn
    if detail is not None:
        halo += DETAIL_HALO
    for rows, cols, wr, wc in tiles(hl, wl, is_tiled(hl * STRIDE, wl * STRIDE), halo):
        top, left = rows.start * STRIDE, cols.start * STRIDE
        bottom, right = min(rows.stop * STRIDE, height), min(cols.stop * STRIDE, width)
        if top >= bottom or left >= right:
            continue  # a tile made only of padding
        oy, ox = top - wr.start * STRIDE, left - wc.start * STRIDE
        keep = (..., slice(oy, oy + bottom - top), slice(ox, ox + right - left))
        with clock("synthesis"):
            xt, feats = g_s(y_hat[..., wr, wc])
            if x_out is None:
                x_out = xt.new_empty(1, xt.shape[1], height, width)
            x_out[..., top:bottom, left:right] = xt[keep]
            del xt
        if y_hat_2 is not None:
            with clock("residual"):
                rt = rrn(y_hat_2[..., wr, wc], feats, *([] if detail is None else [detail(wr, wc)]))
                if r_out is None:
                    r_out = rt.new_empty(1, rt.shape[1], height, width)
                r_out[..., top:bottom, left:right] = rt[keep]
                del rt
        del feats
    return x_out, r_out
