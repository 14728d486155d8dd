"""``scripts/comparison.py``: picking the classical codec's quality for a byte budget."""


import pytest

from .conftest import load_script


@pytest.fixture(scope="module")
def comparison():
    return load_script("scripts/comparison.py")


SIZES = {q: 100 + 10 * q for q in range(0, 101, 2)} | {40: 520, 42: 490}  # not monotone around 40


@pytest.mark.parametrize("budget,expect", [(505, 42), (519, 42), (520, 40), (99, 0), (10_000, 100), (100, 0)])
def test_largest_fitting(comparison, budget, expect):
    q, data, fits = comparison.largest_fitting(lambda s: b"x" * SIZES[s], sorted(SIZES), budget)
    assert q == expect and len(data) == SIZES[q] and fits == (SIZES[q] <= budget)
