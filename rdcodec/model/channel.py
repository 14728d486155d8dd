"""Channel-group context on top of the checkerboard: the space-channel order (He et al., 2022).

Not in the paper. The checkerboard (:mod:`.context`) predicts a non-anchor position from the
decoded anchors around it; it never sees the other channels *at the same position*. Here the
``M`` channels of ``y`` are split into groups ``G_0 .. G_{K-1}`` (default 16, 16, 32, 64, 64
channels, ELIC's uneven split), in an order stored with the weights (``order``: most bits
first, set by stage ``context`` from the training latents), and coded in ``2 K`` passes::

    pass  (0, k), k = 0 .. K-1:  anchors of G_k       params: hyper, refined from the anchors of G_<k
    then the checkerboard:       non-anchor params of every channel from all anchor symbols
    pass  (1, k), k = 0 .. K-1:  non-anchors of G_k   params: checkerboard, refined from all of G_<k

A refinement (one small network per group and phase, :class:`GroupRefiner`) reads the
decoded *values* ``v = q + mu`` of the earlier groups (at the anchors only in phase 0, at every
position in phase 1; zero where not yet decoded) through a 3x3 convolution, together with the
group's own mean and log-scale, and returns::

    mu    = mu_in + d_mu,    sigma = max(sigma_in, 0.11) * exp(d_log_sigma)

Every last layer starts at zero, so an untrained channel context is exactly the checkerboard
model it was added to (tested), and stage ``context`` can train it on a frozen codec.

:func:`run_passes` is the single description of that order. Training calls it with a
``code`` function that rounds the known latent; the encoder with one that rounds and
records the symbols; the decoder with one that reads them from the range coder. So the
three cannot disagree on what is coded when. The checkerboard model alone is the case of one
group (K = 1, no refiners): two passes, the order of rdc-v8's files.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .context import SCALE_BOUND, anchor_mask, parameter_mlp

#: ELIC's uneven channel groups for M = 192 (He et al., CVPR 2022, §3.3).
GROUPS = (16, 16, 32, 64, 64)

#: ``code(phase, channels, means, scales) -> (symbols, values)``: codes the positions of
#: ``phase`` (0: anchors, 1: the others) of ``channels`` (int64 indices into M) given their
#: parameters (B, g, h, w); returns the integer symbols and the decoded values ``q + mu``,
#: both (B, g, h, w) and zero outside the phase's positions.
CodeFn = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class GroupRefiner(nn.Module):
    """(earlier groups' values (B, P, h, w), group means and scales (B, g, h, w)) -> refined means, scales."""

    def __init__(self, previous: int, size: int, hidden: int = 96, width: int = 192) -> None:
        super().__init__()
        self.ctx = nn.Conv2d(previous, hidden, 3, padding=1)
        self.params = parameter_mlp(hidden + 2 * size, width, 2 * size)

    def forward(self, values: torch.Tensor, means: torch.Tensor,
                scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_s = scales.clamp_min(SCALE_BOUND).log()
        d_mu, d_log = self.params(torch.cat([self.ctx(values), means, log_s], dim=1)).chunk(2, dim=1)
        return means + d_mu, (log_s + d_log).exp()


class ChannelContext(nn.Module):
    """The channel groups, their coding order and one :class:`GroupRefiner` per later group and phase."""

    def __init__(self, M: int, groups: tuple[int, ...] = GROUPS) -> None:
        super().__init__()
        if sum(groups) != M or min(groups) < 1:
            raise ValueError(f"channel groups {groups} do not split {M} channels")
        self.groups = tuple(groups)
        self.register_buffer("order", torch.arange(M))  # channel coding order, most bits first
        starts = [sum(groups[:k]) for k in range(len(groups))]
        self.refiners = nn.ModuleList(
            GroupRefiner(starts[k], groups[k]) for k in range(1, len(groups)) for _ in range(2))

    def group_channels(self) -> list[torch.Tensor]:
        """The channel indices of each group, in coding order."""
        order = self.order.long()
        return list(order.split(list(self.groups)))

    def refine(self, k: int, phase: int, values: torch.Tensor, means: torch.Tensor,
               scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.refiners[2 * (k - 1) + phase](values, means, scales)


class PhasedChannelContext(nn.Module):
    """Coding-time form of a :class:`ChannelContext`: each refiner runs only at the positions
    of its phase, half of the work.

    A pass of phase 0 needs its refiner at the anchor phases ``(0, 0), (1, 1)`` of the 2x2
    grid, phase 1 at ``(0, 1), (1, 0)``. For output phase ``(p, q)`` the 3x3 convolution with
    padding 1 is the stride-2 convolution of the padded input shifted by ``(p, q)``, and the
    1x1 layers run on that quarter grid. Same function as the training form (tested to
    1e-12); like :class:`~.context.PhasedContext` it needs even latent sides.
    """

    PHASES = (((0, 0), (1, 1)), ((0, 1), (1, 0)))

    def __init__(self, channel: ChannelContext) -> None:
        super().__init__()
        self.channel = channel

    def group_channels(self) -> list[torch.Tensor]:
        return self.channel.group_channels()

    def refine(self, k: int, phase: int, values: torch.Tensor, means: torch.Tensor,
               scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = means.shape[-2:]
        if h % 2 or w % 2:
            raise ValueError(f"latent sides must be even, got {h}x{w}")
        net = self.channel.refiners[2 * (k - 1) + phase]
        padded = nn.functional.pad(values, (1, 1, 1, 1))
        log_s = scales.clamp_min(SCALE_BOUND).log()
        means, scales = means.clone(), scales.clone()
        for p, q in self.PHASES[phase]:
            c = nn.functional.conv2d(padded[:, :, p:, q:], net.ctx.weight, net.ctx.bias, stride=2)
            m, ls = means[:, :, p::2, q::2], log_s[:, :, p::2, q::2]
            d_mu, d_log = net.params(torch.cat([c, m, ls], dim=1)).chunk(2, dim=1)
            means[:, :, p::2, q::2] = m + d_mu
            scales[:, :, p::2, q::2] = (ls + d_log).exp()
        return means, scales


def run_passes(means_h: torch.Tensor, scales_h: torch.Tensor, checkerboard, channel: ChannelContext | None,
               code: CodeFn) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The space-channel coding order (module docstring); returns the parameters every
    position was coded with and the symbols, all (B, M, h, w) in the original channel order.

    ``checkerboard`` is a :class:`~.context.CheckerboardContext` or its coding form; with
    ``channel=None`` the whole latent is one group (the checkerboard's two passes).
    """
    B, M, h, w = means_h.shape
    anchor = anchor_mask(h, w, device=means_h.device)
    groups = channel.group_channels() if channel is not None else [torch.arange(M)]
    inverse = torch.argsort(torch.cat(groups))

    def in_order(parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(parts, dim=1)[:, inverse]

    out: list[dict[str, list[torch.Tensor]]] = []
    anchor_sym = None
    for phase in (0, 1):
        if phase == 0:
            base_means, base_scales = means_h, scales_h
        else:  # every anchor is decoded: the checkerboard refines the others
            anchor_sym = in_order(out[0]["sym"])
            base_means, base_scales = checkerboard(anchor_sym, means_h, scales_h)
        got: dict[str, list[torch.Tensor]] = {"means": [], "scales": [], "sym": [], "vals": []}
        for k, chans in enumerate(groups):
            m, s = base_means[:, chans], base_scales[:, chans]
            if k:  # phase 0: the earlier groups' anchors; phase 1: all of them
                m, s = channel.refine(k, phase, torch.cat(got["vals"], dim=1), m, s)
            q, v = code(phase, chans, m, s)
            if phase:  # the group's values at every position, for the groups after it
                v = v + out[0]["vals"][k]
            for key, t in zip(("means", "scales", "sym", "vals"), (m, s, q, v)):
                got[key].append(t)
        out.append(got)
    means = torch.where(anchor, in_order(out[0]["means"]), in_order(out[1]["means"]))
    scales = torch.where(anchor, in_order(out[0]["scales"]), in_order(out[1]["scales"]))
    return means, scales, anchor_sym + in_order(out[1]["sym"])


def rounding_code(yg: torch.Tensor) -> CodeFn:
    """The training-time ``code``: symbols ``round(yg - mu)`` of the known gained latent (B, M, h, w)."""
    anchor = anchor_mask(*yg.shape[-2:], device=yg.device)
    yg = yg.detach()

    def code(phase: int, chans: torch.Tensor, means: torch.Tensor, scales: torch.Tensor):
        where = anchor if phase == 0 else ~anchor
        q = torch.round(yg[:, chans] - means.detach()).masked_fill(~where, 0.0)
        return q, (q + means.detach()).masked_fill(~where, 0.0)

    return code
