"""``scripts/probe_machine_refine.py``: the feature weight per alpha follows the trained levels."""

import math

import pytest

from .conftest import load_script


@pytest.fixture(scope="module")
def probe():
    return load_script("scripts/probe_machine_refine.py")


def test_feature_weight_per_alpha(probe):
    assert probe.feature_weight(2.0, 0.3) == 2.0                 # a fixed weight stays fixed
    for level, nu in enumerate(probe.FEATURE_WEIGHTS):                      # the trained levels take run 21's weights
        assert probe.feature_weight(-1, level / 5) == pytest.approx(nu)
    # between two levels: log-linear, like the gains
    assert probe.feature_weight(-1, 0.7) == pytest.approx(math.sqrt(2.0 * 3.2))
    ws = [probe.feature_weight(-1, a / 20) for a in range(21)]
    assert all(a < b for a, b in zip(ws, ws[1:]))
