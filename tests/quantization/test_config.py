"""Quantization configs: validation and round-trips."""

import pytest

from slimkit.errors import ConfigError
from slimkit.quantization import (
    QAT,
    DynamicInt8,
    LowBit,
    MixedPrecision,
    StaticInt8,
    check_bits,
)


@pytest.mark.parametrize("bits", [0, 1, 9, 16, 3.5, True])
def test_bits_outside_2_to_8_are_refused_everywhere(bits):
    with pytest.raises(ConfigError, match="2 to 8 bits"):
        check_bits(bits)
    with pytest.raises(ConfigError, match="bits"):
        LowBit(bits=bits)
    with pytest.raises(ConfigError, match="weight_bits"):
        StaticInt8(weight_bits=bits)


def test_mixed_choices_and_budget():
    assert MixedPrecision().choices == [32, 8, 4, 2] and MixedPrecision().fraction == 0.25
    assert MixedPrecision(budget_bytes=1000).fraction is None
    with pytest.raises(ConfigError, match="not both"):
        MixedPrecision(target_size=0.3, size_bytes=1000)
    with pytest.raises(ConfigError, match="2 to 8 bits"):
        MixedPrecision(choices=[8, 12])
    with pytest.raises(ConfigError, match="target_size must be a fraction"):
        MixedPrecision(budget=1.5)  # the old name is read as target_size


@pytest.mark.parametrize("config", [StaticInt8(observer="entropy"), DynamicInt8(), QAT(weight_bits=4),
                                    LowBit(group_size=32), MixedPrecision(target_size=0.2)])
def test_configs_round_trip_and_reject_typos(config):
    assert type(config).from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown field"):
        type(config).from_dict({**config.to_dict(), "observr": "minmax"})


def test_unknown_observer_names_the_choices():
    with pytest.raises(ConfigError, match="observer"):
        StaticInt8(observer="kl")
