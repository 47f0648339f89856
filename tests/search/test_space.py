"""The search space: choices, the default point, knobs from choices, and validation."""

import optuna
import pytest
import torch

from slimkit.errors import ConfigError
from slimkit.models import DEFAULT_STUDENT
from slimkit.search.space import SearchSpace


def test_default_choices_build_the_default_student():
    space = SearchSpace()
    knobs = space.knobs(space.default_choices())
    assert knobs == {"widths": [8, 16], "depths": [1, 1], "kernels": [3, 3], "separable": [False, False], "hidden": 16}
    assert knobs["widths"] == list(DEFAULT_STUDENT[1]["channels"])
    net = space.build(space.default_choices(), in_channels=1, num_classes=10, input_size=28)
    assert sum(p.numel() for p in net.parameters()) == 14002


def test_every_stage_is_drawn_but_only_the_used_ones_count():
    space = SearchSpace(stages=[1, 2], base_widths=[4, 8], fixed={"dropout": 0.1})
    assert list(space.choices()) == ["stages", "width0", "depth0", "kernel0", "separable0",
                                     "width1", "depth1", "kernel1", "separable1", "hidden"]
    params = {**space.default_choices(), "stages": 1, "width0": 2.0, "kernel0": 5}
    trial = optuna.trial.FixedTrial(params)
    knobs = space.knobs(space.suggest(trial))
    assert knobs == {"widths": [8], "depths": [1], "kernels": [5], "separable": [False], "hidden": 16, "dropout": 0.1}
    net = space.build(params, in_channels=1, num_classes=3, input_size=8)
    assert net(torch.zeros(1, 1, 8, 8)).shape == (1, 3)


@pytest.mark.parametrize("change, message", [
    ({"kernels": [3, 4]}, "odd"),
    ({"stages": [4]}, "base_widths has 3 entries"),
    ({"hidden": []}, "at least one choice"),
    ({"fixed": {"widths": [8]}}, "are searched"),
    ({"width_multipliers": [0]}, "must be > 0"),
])
def test_invalid_spaces_are_rejected(change, message):
    with pytest.raises(ConfigError, match=message):
        SearchSpace(**change)


def test_too_many_stages_for_the_input_size():
    space = SearchSpace(stages=[3], base_widths=[4, 4, 4])
    with pytest.raises(ConfigError, match="at least 8 pixels"):
        space.build({**space.default_choices(), "stages": 3}, in_channels=1, num_classes=3, input_size=4)
