"""Gain units for continuous variable rate (paper §3.2 Eq. 3, after Cui et al. [19]).

A :class:`GainUnit` holds ``L`` (=6) trained per-channel gain vectors ``G_n`` and inverse
gain vectors ``G_n^{-1}`` (trained separately, "asymmetric" gains). A latent is scaled by
``G`` before quantization and by ``G^{-1}`` after it::

    y_hat = Q(y * G_y) * G_y^{-1}

Any ``alpha`` in [0, 1] selects a vector by exponential interpolation between the two
neighbouring trained vectors (paper §4.1)::

    t = 5 * alpha,  s = min(floor(t), 4),  l = 1 - (t - s),  g = g_s**l * g_{s+1}**(1 - l)

so ``alpha = 0`` is the lowest rate (lambda = 0.0625) and ``alpha = 1`` the highest (lambda = 2).
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: The paper's six rate points lambda_n (§4.1). Index n = 0..5 <-> alpha = n / 5.
LAMBDAS: tuple[float, ...] = (0.0625, 0.125, 0.25, 0.5, 1.0, 2.0)


def level_alpha(n, levels: int = len(LAMBDAS)):
    """The alpha of trained level ``n`` (0..levels - 1; an int, or a float tensor of levels):
    ``n / (levels - 1)``."""
    return n / (levels - 1)


def alpha_to_position(alpha: float, levels: int = len(LAMBDAS)) -> tuple[int, float]:
    """Map ``alpha`` to ``(s, l)``: the lower trained index and its interpolation weight."""
    if not (0.0 <= alpha <= 1.0) or math.isnan(alpha):
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    t = (levels - 1) * alpha
    s = min(int(math.floor(t)), levels - 2)
    return s, 1.0 - (t - s)


def interpolate_levels(values: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of per-level vectors ``values`` (L, C) at per-sample ``alpha`` (B,)
    in [0, 1] -> (B, C), differentiable: ``l * values[s] + (1 - l) * values[s + 1]`` with ``s, l``
    of :func:`alpha_to_position` (at ``alpha = n / (L - 1)`` exactly ``values[n]``). On logs (the
    gain units, the machine head's gains) it is Eq. 3's exponential interpolation."""
    levels = values.shape[0]
    t = alpha.to(values) * (levels - 1)
    s = t.floor().clamp(max=levels - 2).long()
    l = (1.0 - (t - s))[:, None]
    return l * values[s] + (1.0 - l) * values[s + 1]


class GainUnit(nn.Module):
    """``levels`` gain/inverse-gain vector pairs over ``channels`` channels.

    ``init`` gives one initial gain per level (the inverse gain starts at its reciprocal),
    e.g. ``sqrt(lambda_n / lambda_max)`` so that the quantization step shrinks with the
    distortion weight from the first step on.
    """

    def __init__(self, channels: int, init: list[float]) -> None:
        super().__init__()
        g = torch.tensor(init, dtype=torch.float32)[:, None].repeat(1, channels)
        # Stored as logs: positivity is free and interpolation is linear in this domain.
        self.log_gain = nn.Parameter(g.log())
        self.log_inv_gain = nn.Parameter(-g.log())

    @property
    def levels(self) -> int:
        return self.log_gain.shape[0]

    def at_levels(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample trained vectors for integer levels ``idx`` (B,) -> two (B, C, 1, 1)."""
        return (self.log_gain[idx].exp()[:, :, None, None],
                self.log_inv_gain[idx].exp()[:, :, None, None])

    def at_alphas(self, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training form of :meth:`at_alpha`: per-sample ``alpha`` (B,) in [0, 1] -> two (B, C, 1, 1),
        differentiable, on the parameters' device and dtype."""
        return (interpolate_levels(self.log_gain, alpha).exp()[:, :, None, None],
                interpolate_levels(self.log_inv_gain, alpha).exp()[:, :, None, None])

    def at_alpha(self, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Interpolated vectors for a continuous ``alpha`` -> two float32 (1, C, 1, 1).

        Evaluated in float64 on the CPU and rounded once, so every machine gets the same
        gains (they scale the latents that are coded).
        """
        s, l = alpha_to_position(alpha, self.levels)

        def interp(logs: torch.Tensor) -> torch.Tensor:
            # g_s**l * g_{s+1}**(1-l), evaluated in the log domain
            logs = logs.detach().cpu().double()
            return (l * logs[s] + (1.0 - l) * logs[s + 1]).exp().float()[None, :, None, None]

        return interp(self.log_gain), interp(self.log_inv_gain)
