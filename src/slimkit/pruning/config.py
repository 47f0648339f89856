"""Typed pruning configs. ``prune(model, config)`` dispatches on which of these it is given.

Every field is checked once, at construction, with the same rules in Python, YAML and the CLI:
ratios outside (0, 1), unknown criteria or layer types, and a structured config with no target
are ConfigErrors that name the field and the fix.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator
from torch import nn

from slimkit.config import Config, Seed
from slimkit.registry import did_you_mean

#: Fields of StructuredPruning that set how much to prune; at most one may be given.
TARGETS: tuple[str, ...] = ("ratio", "target_macs", "target_params", "latency_ms")

def module_types(names: tuple[str, ...]) -> tuple[type[nn.Module], ...]:
    """The ``torch.nn`` classes named in ``names`` (a config's ``types`` field).

    >>> module_types(("Linear",))
    (<class 'torch.nn.modules.linear.Linear'>,)
    """
    return tuple(getattr(nn, name) for name in names)


class UnstructuredPruning(Config):
    """Zero individual weights: ``amount`` is the share of the selected weights set to zero.

    ``scope="layer"`` prunes every selected layer to ``amount``; ``"global"`` ranks all selected
    weights together, so layers with many small weights lose more; ``"scaled"`` ranks them
    together in units of each layer's standard deviation (Han et al.'s threshold, quality x std),
    so layers with wide fan-in, whose weights are all small, are not wiped out. Masks are parametrizations,
    so pruned weights stay zero while training; ``make_permanent`` bakes them in.

    >>> UnstructuredPruning(amount=0.9, scope="global").types
    ('Conv2d', 'Linear')
    >>> UnstructuredPruning(amount=1.0)
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: UnstructuredPruning: field 'amount': Input should be less than 1 (got 1.0)
      hint: valid fields: method, scope, amount, include, exclude, types, seed
    """

    method: Literal["magnitude", "random"] = "magnitude"
    scope: Literal["layer", "global", "scaled"] = "layer"
    amount: float = Field(0.5, gt=0, lt=1)
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    types: tuple[str, ...] = ("Conv2d", "Linear")
    seed: Seed = 0

    @field_validator("types")
    @classmethod
    def _known_types(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            layer = getattr(nn, name, None)
            if not (isinstance(layer, type) and issubclass(layer, nn.Module)):
                known = [n for n in dir(nn) if isinstance(getattr(nn, n), type)]
                # ValueError: pydantic turns it into the field's error message.
                raise ValueError(f"'{name}' is not a torch.nn layer class.{did_you_mean(name, known)}")  # noqa: TRY004
        return names


class StructuredPruning(Config):
    """Remove whole channels (filters, neurons) physically, keeping every coupled layer consistent.

    How much, at most one of:

    - ``ratio``: share of channels removed (per layer with ``allocation="uniform"``, over the whole
      network with ``"global"``);
    - ``target_macs`` / ``target_params``: share of the original MACs / parameters to *keep*
      (0.5 = 2x fewer), reached by searching the channel ratio;
    - ``latency_ms``: a measured latency budget at ``latency_batch_size``.

    ``ratios`` maps layer globs to fixed per-layer ratios (for example chosen by sensitivity
    analysis); with no target only those layers are pruned. ``include`` and ``exclude`` are globs
    on layer names: a channel group (the layers whose channels are cut together) is pruned only if
    one of its layers matches ``include`` and none matches ``exclude``; the others, and the logits
    layer, keep all their output channels (``keep`` is read as ``exclude``). ``round_to`` rounds
    kept channel counts to a multiple (hardware-friendly widths); ``"auto"`` rounds groups of at
    least 32 channels to multiples of 8, what CPU kernels vectorize over (see
    :mod:`slimkit.pruning.structured`). It stays off by default, so that ``ratio`` means exactly
    that share. ``max_layer_ratio`` caps what any one layer loses.

    Grouped convolutions and attention layers keep a multiple of their groups or heads, and
    every group or head loses the same positions. Layers the dependency graph cannot follow are
    left whole with a :class:`~slimkit.pruning.PruningWarning` naming them; the model is changed
    only if the whole cut succeeds.

    >>> StructuredPruning(criterion="l1", target_macs=0.5, exclude=["classifier.*"]).allocation
    'uniform'
    >>> StructuredPruning(ratio=0.3, target_macs=0.5)
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: StructuredPruning: field '(root)': Value error, give at most one target, got ratio and target_macs (got ...)
      hint: valid fields: criterion, ratio, target_macs, target_params, latency_ms, latency_batch_size, allocation, ratios, include, exclude, round_to, max_layer_ratio, calibration_batches, activation_stat, threads, seed
    """

    criterion: str = "l1"
    ratio: float | None = Field(None, gt=0, lt=1)
    target_macs: float | None = Field(None, gt=0, lt=1)
    target_params: float | None = Field(None, gt=0, lt=1)
    latency_ms: float | None = Field(None, gt=0)
    latency_batch_size: int = Field(1, ge=1)
    allocation: Literal["uniform", "global"] = "uniform"
    ratios: dict[str, float] = Field(default_factory=dict)
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    round_to: int | Literal["auto"] | None = None
    max_layer_ratio: float = Field(0.9, gt=0, lt=1)
    calibration_batches: int = Field(8, ge=1)
    activation_stat: Literal["mean", "apoz"] = "mean"
    threads: int | None = Field(None, ge=1)
    seed: Seed = 0
    renamed: ClassVar[dict[str, str]] = {"keep": "exclude"}

    @field_validator("criterion")
    @classmethod
    def _known_criterion(cls, name: str) -> str:
        from slimkit.pruning.importance import IMPORTANCE

        if name not in IMPORTANCE:
            raise ValueError(
                f"unknown criterion '{name}'.{did_you_mean(name, IMPORTANCE.names())} "
                f"Known: {', '.join(IMPORTANCE.names())}"
            )
        return name

    @field_validator("round_to")
    @classmethod
    def _positive_step(cls, step: int | str | None) -> int | str | None:
        if isinstance(step, int) and step < 1:
            raise ValueError(f"round_to must be at least 1 (or 'auto'), got {step}")
        return step

    @field_validator("ratios")
    @classmethod
    def _ratios_in_range(cls, ratios: dict[str, float]) -> dict[str, float]:
        for layer, value in ratios.items():
            if not 0 < value < 1:
                raise ValueError(
                    f"ratio for layer '{layer}' must be in (0, 1), got {value}; 1 would remove every channel, "
                    "drop the layer from 'ratios' to leave it whole"
                )
        return ratios

    @model_validator(mode="after")
    def _one_target(self) -> StructuredPruning:
        given = [name for name in TARGETS if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one target, got {' and '.join(given)}")
        if not given and not self.ratios:
            raise ValueError(f"say how much to prune: set one of {', '.join(TARGETS)}, or per-layer 'ratios'")
        return self

    @property
    def target(self) -> str | None:
        """The name of the target field that is set, or None (only per-layer ``ratios``)."""
        return next((name for name in TARGETS if getattr(self, name) is not None), None)
