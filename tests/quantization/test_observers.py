"""Observers against ranges computed by hand."""

import math

import numpy as np
import pytest
import torch

from slimkit.errors import ConfigError, DataError
from slimkit.quantization.observers import (
    OBSERVERS,
    EntropyObserver,
    MinMaxObserver,
    MovingAverageObserver,
    MSEObserver,
    PercentileObserver,
    build_observer,
    fake_quant,
    qparams,
)


def test_registry_names_match_the_config_literal():
    assert OBSERVERS.names() == ["entropy", "minmax", "moving_average", "mse", "percentile"]
    with pytest.raises(ConfigError, match="Did you mean 'minmax'"):
        build_observer("minmx")


def test_minmax_keeps_extremes_over_batches():
    obs = MinMaxObserver()
    for batch in ([0.5, -2.0], [3.0, 1.0], [-1.0]):
        obs(torch.tensor(batch))
    assert obs.range() == (-2.0, 3.0)


def test_moving_average_by_hand():
    obs = MovingAverageObserver(averaging_constant=0.25)
    for batch in ([-1.0, 1.0], [-3.0, 5.0], [-1.0, 1.0]):
        obs(torch.tensor(batch))
    # lo: -1 -> -1 + .25 * (-3 + 1) = -1.5 -> -1.5 + .25 * (-1 + 1.5) = -1.375
    # hi:  1 ->  1 + .25 * (5 - 1) = 2 -> 2 + .25 * (1 - 2) = 1.75
    assert obs.range() == pytest.approx((-1.375, 1.75))


def test_percentile_of_1_to_1000_within_one_bin():
    obs = PercentileObserver(percentile=99.0)
    obs(torch.arange(1, 1001, dtype=torch.float32))
    lo, hi = obs.range()
    width = 999 / 2048
    assert abs(lo - 10.0) <= 2 * width and abs(hi - 990.0) <= 2 * width


def test_percentile_is_stable_across_batches_that_widen_the_range():
    obs = PercentileObserver(percentile=99.0)
    for chunk in torch.arange(1, 1001, dtype=torch.float32).split(250):
        obs(chunk)
    lo, hi = obs.range()
    assert abs(hi - 990.0) < 3.0 and abs(lo - 10.0) < 3.0


def test_entropy_clips_a_lone_outlier_at_the_data_edge():
    # 64 bins over [0, 16]: uniform mass fills bins 0-3 ([0, 1)), the outlier sits in bin 63.
    # With 4 levels, the window [0, 1] reproduces P exactly except the outlier's single count;
    # any wider window leaves Q empty where P holds the outlier, so KL is far larger.
    x = torch.cat([torch.linspace(0.0, 0.999, 4000), torch.tensor([16.0])])
    obs = EntropyObserver(bins=64, levels=4)
    obs(x)
    assert obs.range() == pytest.approx((0.0, 1.0))


def test_mse_prefers_clipping_when_rounding_dominates():
    # 2-bit grid (4 levels). Full range [0, 10]: step 10/3, each of 1000 ones rounds to 0 -> error 1000.
    # Range [0, 3]: levels 0, 1, 2, 3 hold the ones exactly and clipping 10 to 3 costs 49: the
    # optimum (up to the candidate grid, steps of 10/128).
    x = torch.cat([torch.zeros(1000), torch.ones(1000), torch.tensor([10.0])])
    obs = MSEObserver(levels=4)
    obs(x)
    lo, hi = obs.range()
    assert lo == 0.0 and 3.0 <= hi <= 3.0 + 10 / 128
    scale, zero = qparams(lo, hi, qmin=0, qmax=3)
    err = np.sum((x.numpy() - fake_quant(x.numpy(), scale, zero, 0, 3)) ** 2)
    assert 48 < err < 50  # (10 - hi)^2 + 1000 * (hi / 3 - 1)^2 at hi = 3.05


def test_mse_keeps_the_range_when_clipping_costs_more():
    x = torch.cat([torch.rand(1000, generator=torch.Generator().manual_seed(0)), torch.tensor([4.0])])
    obs = MSEObserver()  # 256 levels: rounding error is tiny, clipping the 4.0 is not
    obs(x)
    assert obs.range()[1] == pytest.approx(4.0, rel=1e-3)


@pytest.mark.parametrize("name", ["minmax", "moving_average", "percentile", "entropy", "mse"])
def test_every_observer_covers_most_of_a_gaussian_and_refuses_no_data(name):
    x = torch.randn(50_000, generator=torch.Generator().manual_seed(1))
    obs = build_observer(name)
    with pytest.raises(DataError, match="saw no data"):
        obs.range()
    assert torch.equal(obs(x), x)  # observers pass data through
    lo, hi = obs.range()
    assert -5.0 < lo < -2.5 and 2.5 < hi < 5.0


def test_qparams_by_hand():
    assert qparams(0.0, 2.55, qmin=0, qmax=255) == pytest.approx((0.01, 0))
    scale, zero = qparams(-1.0, 3.0)  # affine uint8: 4/255, zero at round(1/scale) = 64
    assert scale == pytest.approx(4 / 255) and zero == 64
    assert qparams(-2.0, 1.0, qmin=-128, qmax=127, symmetric=True) == pytest.approx((2 / 127.5, 0))
    assert qparams(0.0, 0.0)[0] == 2.0**-12  # dead channel: smallest scale, not zero
    assert math.isclose(fake_quant(np.array([0.5]), 0.25, 0, 0, 3)[0], 0.5)
