import pytest
from torch import nn

from slimkit.errors import ConfigError
from slimkit.select import select_modules


def net() -> nn.Module:
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU()),
        nn.Sequential(nn.Conv2d(4, 8, 3), nn.BatchNorm2d(8), nn.ReLU()),
        nn.Flatten(),
        nn.Linear(8, 2),
    )


def test_globs_and_types():
    assert list(select_modules(net(), ["*.0"])) == ["0.0", "1.0"]
    assert list(select_modules(net(), types=[nn.Conv2d, nn.Linear])) == ["0.0", "1.0", "3"]


def test_exclude_wins_over_include():
    assert list(select_modules(net(), types=[nn.Conv2d, nn.Linear], exclude=["3"])) == ["0.0", "1.0"]


def test_strict_reports_pattern_matching_nothing():
    with pytest.raises(ConfigError, match=r"\['features\.\*'\] match no module") as info:
        select_modules(net(), ["features.*"], strict=True)
    assert "0.0" in info.value.hint


def test_single_string_is_rejected():
    with pytest.raises(ConfigError, match="list of globs"):
        select_modules(net(), "0.*")  # type: ignore[arg-type]
