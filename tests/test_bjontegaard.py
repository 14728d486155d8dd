import doctest
import math

import numpy as np
import pytest

from rdcodec.eval import bjontegaard as bd

R = np.array([0.1, 0.25, 0.5, 1.0, 2.0])
Q = np.array([26.0, 29.5, 32.3, 35.1, 38.0])


def test_docstring():
    assert doctest.testmod(bd).failed == 0


def test_identical_curves():
    assert bd.bd_rate(R, Q, R, Q) == pytest.approx(0.0, abs=1e-12)
    assert bd.bd_quality(R, Q, R, Q) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("factor", [0.7, 0.9, 1.25])
def test_uniform_rate_scaling_is_exact(factor):
    assert bd.bd_rate(R, Q, R * factor, Q) == pytest.approx((factor - 1) * 100, abs=1e-9)


def test_uniform_quality_shift_is_exact():
    assert bd.bd_quality(R, Q, R, Q + 0.8) == pytest.approx(0.8, abs=1e-12)


def test_antisymmetry_of_bd_quality():
    Rb, Qb = R * 1.1, Q + np.array([0.3, 0.1, 0.2, -0.1, 0.4])
    assert bd.bd_quality(R, Q, Rb, Qb) == pytest.approx(-bd.bd_quality(Rb, Qb, R, Q), abs=1e-9)


def test_integral_of_cubic_data_is_exact_for_linear_data():
    x = np.array([0.0, 1.0, 2.0, 3.0])
    assert bd._pchip_integral(x, 2 * x + 1, 0.5, 2.5) == pytest.approx((2.5 ** 2 + 2.5) - (0.25 + 0.5))


def test_pchip_does_not_overshoot():
    x = np.array([0.0, 1.0, 2.0, 3.0])
    y = np.array([0.0, 0.0, 1.0, 1.0])
    d = bd._pchip_slopes(x, y)
    assert d[1] == 0 and d[2] == 0  # flat neighbours: monotone data keeps flat tangents


def test_order_of_points_does_not_matter():
    perm = [3, 0, 4, 1, 2]
    assert bd.bd_rate(R, Q, R[perm] * 0.8, Q[perm]) == pytest.approx(-20.0, abs=1e-9)


def test_errors():
    with pytest.raises(ValueError):
        bd.bd_rate([1], [30], [1], [30])
    with pytest.raises(ValueError):
        bd.bd_rate(R, Q, R, Q + 100)  # no overlap in quality
    with pytest.raises(ValueError):
        bd.bd_quality([1, 1], [30, 31], R, Q)


def test_quality_shift_on_log_linear_curve_gives_known_rate_saving():
    # Q = a + b log R: +1 dB at every rate is the same as exp(-1/b) times the rate
    b = 4.5
    q = np.array([28.0, 31.0, 34.0, 37.0])
    r = np.exp((q - 20.0) / b)
    assert bd.bd_rate(r, q, r, q + 1.0) == pytest.approx((math.exp(-1.0 / b) - 1) * 100, abs=1e-9)


def test_bd_table_pairs_and_errors():
    curve = {"bpp": list(R), "psnr-rgb": list(Q)}
    t = bd.bd_table({"ours": {"bpp": list(R * 0.9), "psnr-rgb": list(Q)}},
                    {"a": curve, "far": {"bpp": list(R), "psnr-rgb": list(Q + 100)}})
    assert t["ours vs a"]["bd_rate_percent"] == pytest.approx(-10.0, abs=1e-9)
    assert "error" in t["ours vs far"]


def _noisy_curves(n_images, shift, seed):
    """Per-image (settings, images) matrices: per-image noise shared by A and B (hard images) plus own noise."""
    rng = np.random.default_rng(seed)
    rate = np.tile(R[:, None], (1, n_images)) * rng.uniform(0.8, 1.2, (1, n_images))
    hard = rng.normal(0, 5, (1, n_images))
    qa = Q[:, None] + hard + rng.normal(0, 1, (len(R), n_images))
    qb = Q[:, None] + shift + hard + rng.normal(0, 1, (len(R), n_images))
    return rate, qa, rate, qb


def test_bootstrap_interval_brackets_the_estimate_and_shrinks_with_images():
    small = bd.bd_quality_interval(*_noisy_curves(40, 1.0, 0), n_boot=300)
    large = bd.bd_quality_interval(*_noisy_curves(640, 1.0, 0), n_boot=300)
    for est, lo, hi in (small, large):
        assert lo <= est <= hi
    assert (large[2] - large[1]) < 0.5 * (small[2] - small[1])   # ~ 1/sqrt(16) = 0.25
    assert large[1] < 1.0 < large[2]                             # covers the true shift


def test_bootstrap_interval_is_paired():
    """The per-image 'hardness' is shared by both curves, so it must not widen the interval."""
    est, lo, hi = bd.bd_quality_interval(*_noisy_curves(200, 1.0, 1), n_boot=300)
    rate, qa, _, qb = _noisy_curves(200, 1.0, 1)
    # unpaired: shuffle B's images, which breaks the pairing and lets the 5-point noise in
    rng = np.random.default_rng(2)
    perm = rng.permutation(200)
    _, ulo, uhi = bd.bd_quality_interval(rate, qa, rate[:, perm], qb[:, perm], n_boot=300)
    assert (hi - lo) < 0.5 * (uhi - ulo)


def test_bootstrap_interval_shape_errors():
    m = np.ones((3, 10))
    with pytest.raises(ValueError):
        bd.bd_quality_interval(m, m, np.ones((3, 9)), np.ones((3, 9)))
    with pytest.raises(ValueError):
        bd.bd_quality_interval(m, m, m, np.ones((2, 10)))
