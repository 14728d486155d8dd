import doctest

import numpy as np
import pytest
import torch

from rdcodec.entropy import coder, tables
from rdcodec.errors import CorruptError


def test_docstring_example():
    assert doctest.testmod(coder).failed == 0


def test_gaussian_round_trip_all_scales():
    rng = np.random.default_rng(1)
    idx = rng.integers(0, tables.SCALE_LEVELS, 20000).astype(np.int32)
    sym = np.round(rng.normal(0, tables.SCALE_TABLE[idx])).astype(np.int32)
    sym = np.clip(sym, -tables.Y_RANGE, tables.Y_RANGE)
    data = coder.encode_gaussian(sym, idx)
    assert isinstance(data, bytes) and len(data) % 4 == 0
    out = coder.decode_gaussian(data, idx)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, sym)


def test_gaussian_extreme_symbols_round_trip():
    idx = np.zeros(4, np.int32)  # smallest scale: the extremes are very unlikely but codable
    sym = np.array([tables.Y_RANGE, -tables.Y_RANGE, 0, 7], np.int32)
    np.testing.assert_array_equal(coder.decode_gaussian(coder.encode_gaussian(sym, idx), idx), sym)


def test_factorized_round_trip():
    rng = np.random.default_rng(2)
    K = 2 * tables.Z_RANGE + 1
    pmfs = rng.random((5, K))
    sym = rng.integers(-tables.Z_RANGE, tables.Z_RANGE + 1, (5, 300)).astype(np.int32)
    data = coder.encode_factorized(sym, pmfs, tables.Z_RANGE)
    np.testing.assert_array_equal(coder.decode_factorized(data, pmfs, tables.Z_RANGE, 300), sym)


def test_rate_close_to_information_content():
    """Coded size of Gaussian symbols is within 1% of their ideal information content."""
    from scipy.stats import norm

    rng = np.random.default_rng(3)
    idx = rng.integers(60, 200, 50000).astype(np.int32)
    s = tables.SCALE_TABLE[idx].astype(np.float64)
    sym = np.round(rng.normal(0, s)).astype(np.int32)
    p = norm.cdf((sym + 0.5) / s) - norm.cdf((sym - 0.5) / s)
    ideal_bits = -np.log2(p).sum()
    coded_bits = 8 * len(coder.encode_gaussian(sym, idx))
    assert coded_bits <= ideal_bits * 1.01 + 64


def test_odd_length_string_is_corrupt():
    with pytest.raises(CorruptError):
        coder.decode_gaussian(b"abc", np.zeros(3, np.int32))


def test_scale_snapping_is_nearest_in_log_domain():
    s = torch.tensor([0.0, 0.11, 1.0, 300.0], dtype=torch.float64)
    idx = tables.scale_indices(s)
    assert idx.dtype == np.int32
    assert idx[0] == 0 and idx[1] == 0 and idx[3] == tables.SCALE_LEVELS - 1
    table = tables.SCALE_TABLE.astype(np.float64)
    assert np.argmin(np.abs(np.log(table) - np.log(1.0))) == idx[2]


def test_means_snap_to_grid():
    m = tables.snap_means(torch.tensor([0.123456, -3.999], dtype=torch.float64))
    assert m.dtype == torch.float32
    np.testing.assert_array_equal((m.double() * tables.MEAN_GRID) % 1, 0)
