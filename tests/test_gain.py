import math

import pytest
import torch

from rdcodec.model.gain import LAMBDAS, GainUnit, alpha_to_position


def test_alpha_endpoints_and_trained_points():
    assert alpha_to_position(0.0) == (0, 1.0)
    assert alpha_to_position(1.0) == (4, 0.0)
    for n in range(6):
        s, l = alpha_to_position(n / 5)
        assert (s + (1 - l)) == pytest.approx(n)


@pytest.mark.parametrize("bad", [-0.01, 1.01, float("nan")])
def test_alpha_out_of_range(bad):
    with pytest.raises(ValueError):
        alpha_to_position(bad)


def test_interpolation_is_geometric_between_neighbours():
    unit = GainUnit(3, [math.sqrt(l / LAMBDAS[-1]) for l in LAMBDAS])
    with torch.no_grad():
        unit.log_gain.add_(torch.randn_like(unit.log_gain) * 0.1)
    for n in range(6):
        g, _ = unit.at_alpha(n / 5)
        torch.testing.assert_close(g.flatten(), unit.log_gain[n].exp().detach())
    g_mid, _ = unit.at_alpha(0.5)  # t = 2.5: halfway between levels 2 and 3
    expect = (unit.log_gain[2].exp() * unit.log_gain[3].exp()).sqrt().detach()
    torch.testing.assert_close(g_mid.flatten(), expect)
