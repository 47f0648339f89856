import pytest

from slimkit.errors import ConfigError
from slimkit.factorization import CP, SVD, Tucker


def test_exactly_one_target():
    with pytest.raises(ConfigError, match="not \\['rank', 'energy'\\]"):
        SVD(rank=4, energy=0.9)
    with pytest.raises(ConfigError, match="no rank target"):
        Tucker()
    assert Tucker(allocation="vbmf").budget() is None


def test_allocation_needs_a_budget_and_cp_has_no_spectrum():
    with pytest.raises(ConfigError, match="needs a global budget"):
        SVD(energy=0.9, allocation="energy")
    with pytest.raises(ConfigError, match="no energy spectrum"):
        CP(target_macs=0.5, allocation="energy")
    with pytest.raises(ConfigError, match="ranks must be positive"):
        Tucker(ranks=(0, 3))


def test_round_trip_through_dict():
    config = Tucker(target_macs=0.5, allocation="energy", exclude=["features.0.*"])
    assert Tucker.from_dict(config.to_dict()) == config
