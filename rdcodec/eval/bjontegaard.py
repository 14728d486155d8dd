"""Bjontegaard deltas with piecewise cubic (PCHIP) interpolation.

The classic VCEG-M33 method fits a cubic polynomial through four points; the variant used
by JVET and CompressAI since 2020 interpolates with a shape-preserving piecewise cubic
Hermite (PCHIP, Fritsch-Carlson) curve instead, which cannot overshoot between points.
This module implements that variant without scipy.

* ``bd_rate(rate_a, q_a, rate_b, q_b)`` — average bitrate difference of B against anchor A
  at equal quality, in percent (negative: B needs fewer bits). Integrates log-rate as a
  function of quality over the overlapping quality interval.
* ``bd_quality(...)`` — average quality difference of B against A at equal rate
  (dB for PSNR, points for accuracy), integrating quality over log-rate.

    >>> round(bd_rate([1, 2, 4, 8], [30, 33, 36, 39], [0.9, 1.8, 3.6, 7.2], [30, 33, 36, 39]), 6)
    -10.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch-Carlson derivatives at the knots (monotone-preserving)."""
    h = np.diff(x)
    delta = np.diff(y) / h
    n = len(x)
    d = np.zeros(n)
    if n == 2:
        return np.full(2, delta[0])
    for k in range(1, n - 1):
        if delta[k - 1] * delta[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])
    # one-sided, shape-preserving end slopes
    for k, (h0, h1, d0, d1) in ((0, (h[0], h[1], delta[0], delta[1])),
                                (n - 1, (h[-1], h[-2], delta[-1], delta[-2]))):
        s = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
        if np.sign(s) != np.sign(d0):
            s = 0.0
        elif np.sign(d0) != np.sign(d1) and abs(s) > abs(3 * d0):
            s = 3 * d0
        d[k] = s
    return d


def _pchip_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Integral over [lo, hi] of the PCHIP interpolant through (x, y); x increasing."""
    d = _pchip_slopes(x, y)
    total = 0.0
    for k in range(len(x) - 1):
        a, b = max(lo, x[k]), min(hi, x[k + 1])
        if b <= a:
            continue
        h = x[k + 1] - x[k]
        # Hermite cubic in t in [0, 1]; integrate its antiderivative between the bounds
        c0, c1 = y[k], d[k] * h
        c2 = 3 * (y[k + 1] - y[k]) - (2 * d[k] + d[k + 1]) * h
        c3 = 2 * (y[k] - y[k + 1]) + (d[k] + d[k + 1]) * h

        def F(t: float, c0=c0, c1=c1, c2=c2, c3=c3, h=h) -> float:
            return h * (c0 * t + c1 * t ** 2 / 2 + c2 * t ** 3 / 3 + c3 * t ** 4 / 4)

        total += F((b - x[k]) / h) - F((a - x[k]) / h)
    return total


def _prepare(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError("each curve needs at least two (rate, quality) points")
    order = np.argsort(x)
    x, y = x[order], y[order]
    if np.any(np.diff(x) <= 0):
        raise ValueError("interpolation abscissae must be distinct")
    return x, y


def _mean_gap(xa: Sequence[float] | np.ndarray, ya: Sequence[float] | np.ndarray,
              xb: Sequence[float] | np.ndarray, yb: Sequence[float] | np.ndarray) -> float:
    xa, ya = _prepare(xa, ya)
    xb, yb = _prepare(xb, yb)
    lo, hi = max(xa[0], xb[0]), min(xa[-1], xb[-1])
    if hi <= lo:
        raise ValueError("the curves do not overlap")
    return (_pchip_integral(xb, yb, lo, hi) - _pchip_integral(xa, ya, lo, hi)) / (hi - lo)


def bd_rate(rate_a: Sequence[float], quality_a: Sequence[float], rate_b: Sequence[float],
            quality_b: Sequence[float]) -> float:
    """Average rate change of B relative to A at equal quality, in percent."""
    gap = _mean_gap(quality_a, np.log(rate_a), quality_b, np.log(rate_b))
    return (math.exp(gap) - 1.0) * 100.0


def bd_quality(rate_a: Sequence[float], quality_a: Sequence[float], rate_b: Sequence[float],
               quality_b: Sequence[float]) -> float:
    """Average quality change of B relative to A at equal rate (e.g. BD-PSNR in dB)."""
    return _mean_gap(np.log(rate_a), quality_a, np.log(rate_b), quality_b)


def bd_table(tests: dict[str, dict[str, Any]], anchors: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """BD-rate and BD-PSNR of every test curve against every anchor curve.

    Curves are CompressAI-style ``results`` dicts with ``bpp`` and ``psnr-rgb`` lists. Keys of
    the result are ``"<test> vs <anchor>"``; a pair that does not overlap gets ``{"error": ...}``.
    """
    table: dict[str, dict[str, Any]] = {}
    for tname, t in tests.items():
        for aname, a in anchors.items():
            try:
                table[f"{tname} vs {aname}"] = {
                    "bd_rate_percent": bd_rate(a["bpp"], a["psnr-rgb"], t["bpp"], t["psnr-rgb"]),
                    "bd_psnr_db": bd_quality(a["bpp"], a["psnr-rgb"], t["bpp"], t["psnr-rgb"])}
            except ValueError as e:
                table[f"{tname} vs {aname}"] = {"error": str(e)}
    return table


def bd_quality_interval(rate_a: np.ndarray, quality_a: np.ndarray, rate_b: np.ndarray, quality_b: np.ndarray,
                        n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """BD-quality of B against A with a paired bootstrap confidence interval over images.

    Each argument is a per-image matrix of shape (settings, images): the rate and quality of
    every image at every setting of the curve, with the same images in the same column order
    for A and B. The curves are the means over images (as for ``bd_quality``); the bootstrap
    draws ``n_boot`` image sets with replacement, the same draw for both curves (the pairing
    is what makes the interval tight: both codecs saw the same hard images), and recomputes
    the BD value. Returns ``(estimate, low, high)``, the percentile interval at ``level``.

    >>> rng = np.random.default_rng(1)
    >>> r = np.tile([[0.2], [0.4], [0.8]], (1, 50)); q = rng.random((3, 50)) * 10 + [[50], [60], [70]]
    >>> est, lo, hi = bd_quality_interval(r, q, r, q + 2.0)
    >>> round(est, 6), round(lo, 6), round(hi, 6)
    (2.0, 2.0, 2.0)
    """
    mats = [np.asarray(m, dtype=np.float64) for m in (rate_a, quality_a, rate_b, quality_b)]
    n = mats[0].shape[1]
    if any(m.ndim != 2 or m.shape[1] != n for m in mats) or mats[0].shape != mats[1].shape \
            or mats[2].shape != mats[3].shape:
        raise ValueError("per-image matrices must be (settings, images) with the same images for both curves")
    est = bd_quality(*(m.mean(axis=1) for m in mats))
    rng = np.random.default_rng(seed)
    # multinomial counts: a bootstrap sample's mean is counts @ values / n
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot) / n
    draws = []
    for w in weights:
        try:
            draws.append(bd_quality(*(m @ w for m in mats)))
        except ValueError:  # a resample where the curves stop overlapping or points coincide
            continue
    if not draws:
        raise ValueError("no bootstrap resample gave overlapping curves")
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return est, float(lo), float(hi)
