"""The student search space: the knobs of the ``searchnet`` family, as Optuna categorical choices.

A candidate is a flat dict of choices (``stages``, ``width{i}``, ``depth{i}``, ``kernel{i}``,
``separable{i}``, ``hidden``). Choices for every possible stage are always drawn, even for a
net with fewer stages, so the space has the same parameters in every trial: NSGA-II's crossover
and TPE's multivariate model then see one fixed space. ``knobs(choices)`` turns a candidate into
``searchnet`` keyword arguments, so a finished trial's params rebuild its model exactly.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_validator
from torch import nn

from slimkit.config import Config

if TYPE_CHECKING:
    import optuna

__all__ = ["FAMILY", "SearchSpace"]

#: The model family (a ``slimkit.models.MODELS`` name) the space builds.
FAMILY = "searchnet"


class SearchSpace(Config):
    """Which architectures student search may try.

    - ``stages``: how many pooling stages (each halves the resolution);
    - ``base_widths``: channels of stage i at multiplier 1 (one entry per possible stage);
    - ``width_multipliers``, ``depths`` (conv blocks per stage), ``kernels`` and ``separable``
      (depthwise-separable or standard convs): chosen per stage;
    - ``hidden``: units of the hidden fc layer (0: none);
    - ``fixed``: other searchnet knobs every candidate gets (``dropout``, ``global_pool``).

    The defaults contain the default student (2 stages of 8 and 16 channels, 3x3 standard convs,
    fc 16): see :meth:`default_choices`.

    >>> space = SearchSpace()
    >>> space.knobs(space.default_choices())["widths"], space.size()
    ([8, 16], 262400)
    >>> SearchSpace(stages=[4])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: SearchSpace: ...base_widths has 3 entries but up to 4 stages are searched...
    """

    stages: list[int] = Field(default_factory=lambda: [2, 3])
    base_widths: list[int] = Field(default_factory=lambda: [8, 16, 32])
    width_multipliers: list[float] = Field(default_factory=lambda: [0.5, 0.75, 1.0, 1.5, 2.0])
    depths: list[int] = Field(default_factory=lambda: [1, 2])
    kernels: list[int] = Field(default_factory=lambda: [3, 5])
    separable: list[bool] = Field(default_factory=lambda: [False, True])
    hidden: list[int] = Field(default_factory=lambda: [0, 16, 32, 64])
    fixed: dict[str, Any] = Field(default_factory=dict)

    @field_validator("stages", "base_widths", "width_multipliers", "depths", "kernels", "separable", "hidden")
    @classmethod
    def _choices(cls, values: list[Any], info: Any) -> list[Any]:
        if not values:
            raise ValueError("give at least one choice")
        if info.field_name != "base_widths" and len(set(values)) != len(values):
            raise ValueError(f"choices must be distinct, got {values}")
        return values

    @field_validator("stages", "base_widths", "depths")
    @classmethod
    def _positive(cls, values: list[int]) -> list[int]:
        if any(v < 1 for v in values):
            raise ValueError(f"values must be >= 1, got {values}")
        return values

    @field_validator("width_multipliers")
    @classmethod
    def _multipliers(cls, values: list[float]) -> list[float]:
        if any(v <= 0 for v in values):
            raise ValueError(f"width multipliers must be > 0, got {values}")
        return values

    @field_validator("kernels")
    @classmethod
    def _odd(cls, values: list[int]) -> list[int]:
        if any(v < 1 or v % 2 == 0 for v in values):
            raise ValueError(f"kernel sizes must be odd and positive (same padding), got {values}")
        return values

    @field_validator("fixed")
    @classmethod
    def _fixed_knobs(cls, fixed: dict[str, Any]) -> dict[str, Any]:
        searched = {"widths", "depths", "kernels", "separable", "hidden", "in_channels", "num_classes", "input_size"}
        clash = sorted(set(fixed) & searched)
        if clash:
            raise ValueError(f"fixed knobs {clash} are searched or come from the data; remove them from 'fixed'")
        return fixed

    @model_validator(mode="after")
    def _enough_widths(self) -> SearchSpace:
        if len(self.base_widths) < max(self.stages):
            raise ValueError(f"base_widths has {len(self.base_widths)} entries but up to {max(self.stages)} "
                             "stages are searched; give one base width per stage")
        return self

    # ------------------------------------------------------------------ choices
    def choices(self) -> dict[str, list[Any]]:
        """Every parameter of a candidate and its choices, in drawing order."""
        out: dict[str, list[Any]] = {"stages": list(self.stages)}
        for i in range(max(self.stages)):
            out[f"width{i}"] = list(self.width_multipliers)
            out[f"depth{i}"] = list(self.depths)
            out[f"kernel{i}"] = list(self.kernels)
            out[f"separable{i}"] = list(self.separable)
        out["hidden"] = list(self.hidden)
        return out

    def size(self) -> int:
        """How many distinct architectures the space holds (unused deeper stages not counted)."""
        per_stage = len(self.width_multipliers) * len(self.depths) * len(self.kernels) * len(self.separable)
        return sum(per_stage**n for n in self.stages) * len(self.hidden)

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Draw a candidate's choices from ``trial``."""
        return {name: trial.suggest_categorical(name, options) for name, options in self.choices().items()}

    def default_choices(self) -> dict[str, Any]:
        """The candidate nearest the default student: multiplier 1, depth 1, kernel 3, standard
        convs, 2 stages and fc 16 (each replaced by the first choice where it is not offered)."""
        def pick(options: list[Any], want: Any) -> Any:
            return want if want in options else options[0]

        out = {name: options[0] for name, options in self.choices().items()}
        out["stages"] = pick(self.stages, 2)
        for i in range(max(self.stages)):
            out[f"width{i}"] = pick(self.width_multipliers, 1.0)
            out[f"depth{i}"], out[f"kernel{i}"] = pick(self.depths, 1), pick(self.kernels, 3)
            out[f"separable{i}"] = pick(self.separable, False)
        out["hidden"] = pick(self.hidden, 16)
        return out

    def knobs(self, choices: dict[str, Any]) -> dict[str, Any]:
        """``searchnet`` knobs for a candidate (only its first ``stages`` stages count)."""
        n = int(choices["stages"])
        return {
            "widths": [max(1, round(self.base_widths[i] * float(choices[f"width{i}"]))) for i in range(n)],
            "depths": [int(choices[f"depth{i}"]) for i in range(n)],
            "kernels": [int(choices[f"kernel{i}"]) for i in range(n)],
            "separable": [bool(choices[f"separable{i}"]) for i in range(n)],
            "hidden": int(choices["hidden"]),
            **self.fixed,
        }

    def build(self, choices: dict[str, Any], *, in_channels: int, num_classes: int, input_size: int) -> nn.Module:
        """The candidate's model, freshly initialised, with its ``slimkit_spec`` attached."""
        from slimkit.models import build_model

        n = int(choices["stages"])
        if input_size >> n < 1:
            from slimkit.errors import ConfigError

            raise ConfigError(f"search space: {n} stages need inputs of at least {2**n} pixels, got {input_size}",
                              hint=f"limit 'stages' to at most {int(math.log2(input_size))}")
        return build_model(FAMILY, in_channels=in_channels, num_classes=num_classes, input_size=input_size,
                           **self.knobs(choices))
