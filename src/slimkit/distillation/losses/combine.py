"""Combine losses with weights, and build them by name from YAML-like specs.

``LOSSES`` maps each short name to its class. ``build_loss`` turns
``{"name": "kd", "weight": 0.9, "temperature": 4}`` into a weighted term, validating the
arguments against the class's constructor before anything runs, so a typo fails at load time.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from pydantic import ConfigDict, ValidationError, create_model
from torch import Tensor, nn

from slimkit.distillation.losses.base import Outputs, materialize
from slimkit.distillation.losses.feature import ATLoss, FitNetLoss
from slimkit.distillation.losses.logit import (
    DISTLoss,
    DKDLoss,
    HardLabelLoss,
    KDLoss,
    LogitStandardKDLoss,
)
from slimkit.distillation.losses.probabilistic import PKTLoss
from slimkit.distillation.losses.relation import RKDLoss, SPLoss
from slimkit.errors import ConfigError
from slimkit.registry import Registry, did_you_mean

LOSSES: Registry[type[nn.Module]] = Registry("distillation loss")
for _name, _cls, _needs in (
    ("kd", KDLoss, "logits"),
    ("ce", HardLabelLoss, "logits, labels"),
    ("dkd", DKDLoss, "logits, labels"),
    ("logit_std", LogitStandardKDLoss, "logits"),
    ("dist", DISTLoss, "logits"),
    ("fitnet", FitNetLoss, "features"),
    ("at", ATLoss, "features"),
    ("sp", SPLoss, "features or logits"),
    ("rkd", RKDLoss, "features or logits"),
    ("pkt", PKTLoss, "features or logits"),
):
    LOSSES.add(_name, _cls, doc=(_cls.__doc__ or "").strip().splitlines()[0], needs=_needs)

_RESERVED = ("name", "weight", "label")


class WeightedSumLoss(nn.Module):
    """``sum_i weight_i * loss_i(student, teacher, batch)``, also reporting each term.

    Returns ``(total, {name: value})`` where the values are the unweighted terms as floats,
    for logging. Terms with weight 0 are skipped (useful when a schedule ramps a term in).

    >>> import torch
    >>> loss = WeightedSumLoss({"kd": (0.9, KDLoss()), "ce": (0.1, HardLabelLoss())})
    >>> out = Outputs(torch.tensor([[0.0, 0.0]]))
    >>> total, terms = loss(out, out, (None, torch.tensor([0])))
    >>> round(float(total), 4), sorted(terms)
    (0.0693, ['ce', 'kd'])
    """

    def __init__(self, terms: Mapping[str, tuple[float, nn.Module]]) -> None:
        super().__init__()
        if not terms:
            raise ConfigError("WeightedSumLoss needs at least one term")
        self.terms = nn.ModuleDict()
        self.weights: dict[str, float] = {}
        for name, term in terms.items():
            if not isinstance(term, tuple) or len(term) != 2 or not isinstance(term[1], nn.Module):
                raise ConfigError(
                    f"WeightedSumLoss term '{name}' must be (weight, loss_module), got {term!r}"
                )
            if not isinstance(name, str) or not name or "." in name:
                raise ConfigError(
                    f"WeightedSumLoss term name {name!r} is invalid",
                    hint="use a non-empty name without '.', e.g. 'at_layer2'",
                )
            self.terms[name] = term[1]
            self.set_weight(name, term[0])

    def set_weight(self, name: str, weight: float) -> None:
        """Change one term's weight (e.g. a warm-up schedule)."""
        if name not in self.terms:
            raise ConfigError(f"WeightedSumLoss has no term '{name}'.{did_you_mean(name, list(self.terms))}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise ConfigError(f"weight of loss term '{name}' must be a finite number, got {weight!r}")
        self.weights[name] = float(weight)

    def forward(
        self, student: Outputs, teacher: Outputs, batch: Sequence[Any] | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        total: Tensor | None = None
        logs: dict[str, float] = {}
        for name, loss in self.terms.items():
            weight = self.weights[name]
            if weight == 0:
                continue
            value = loss(student, teacher, batch)
            if isinstance(value, tuple):  # a nested WeightedSumLoss
                value, inner = value
                logs.update({f"{name}.{key}": v for key, v in inner.items()})
            logs[name] = float(value.detach())
            total = weight * value if total is None else total + weight * value
        if total is None:
            raise ConfigError("WeightedSumLoss: every term has weight 0, so there is nothing to optimize")
        return total, logs

    def materialize(self, student: Outputs, teacher: Outputs) -> list[str]:
        """Create shape-dependent parameters (adapters) of every term now; see ``materialize``."""
        return materialize(self, student, teacher)

    def extra_repr(self) -> str:
        return ", ".join(f"{name}: {w:g}" for name, w in self.weights.items())


class LossTerm(NamedTuple):
    """One built term: its label in logs, its weight, and the loss module."""

    label: str
    weight: float
    loss: nn.Module


def build_loss(spec: Mapping[str, Any]) -> LossTerm:
    """Build one weighted loss from ``{"name": ..., "weight": ..., "label": ..., **args}``.

    ``weight`` defaults to 1 and ``label`` to the name. Unknown or ill-typed arguments raise
    ConfigError naming the loss and its valid arguments.

    >>> build_loss({"name": "kd", "weight": 0.9, "temperature": 4})
    LossTerm(label='kd', weight=0.9, loss=KDLoss(temperature=4.0))
    """
    if not isinstance(spec, Mapping):
        raise ConfigError(f"a loss spec must be a mapping like {{'name': 'kd'}}, got {spec!r}")
    if "name" not in spec:
        raise ConfigError(
            f"loss spec {dict(spec)!r} has no 'name'",
            hint=f"known distillation losses: {', '.join(LOSSES.names())}",
        )
    name = spec["name"]
    cls = LOSSES.get(name)
    weight = spec.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
        raise ConfigError(f"distillation loss '{name}': weight must be a finite number, got {weight!r}")
    label = spec.get("label", name)
    args = {k: v for k, v in spec.items() if k not in _RESERVED}
    return LossTerm(str(label), float(weight), cls(**_validate_args(name, cls, args)))


def build_losses(specs: Sequence[Mapping[str, Any]]) -> WeightedSumLoss:
    """Build a ``WeightedSumLoss`` from a list of specs; repeated labels get ``_2``, ``_3``...

    >>> build_losses([{"name": "kd", "weight": 0.9}, {"name": "ce", "weight": 0.1}]).weights
    {'kd': 0.9, 'ce': 0.1}
    """
    if isinstance(specs, Mapping) or not specs:
        raise ConfigError("build_losses takes a non-empty list of loss specs, e.g. [{'name': 'kd'}]")
    terms: dict[str, tuple[float, nn.Module]] = {}
    for spec in specs:
        term = build_loss(spec)
        label, n = term.label, 1
        while label in terms:
            n += 1
            label = f"{term.label}_{n}"
        terms[label] = (term.weight, term.loss)
    return WeightedSumLoss(terms)


def loss_arguments(name: str) -> dict[str, Any]:
    """The constructor arguments of a registered loss and their defaults (``...`` if required).

    >>> loss_arguments("kd")
    {'temperature': 4.0}
    """
    return {p.name: (... if p.default is p.empty else p.default) for p in _params(LOSSES.get(name))}


def _params(cls: type[nn.Module]) -> list[inspect.Parameter]:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _validate_args(name: str, cls: type[nn.Module], args: dict[str, Any]) -> dict[str, Any]:
    params = {p.name: p for p in _params(cls)}
    valid = ", ".join(params) or "none"
    hint = f"valid arguments of '{name}': {valid} (plus name, weight, label)"
    for key in args:
        if key not in params:
            raise ConfigError(
                f"distillation loss '{name}': unknown argument '{key}'.{did_you_mean(key, list(params))}",
                hint=hint,
            )
    missing = [k for k, p in params.items() if p.default is p.empty and k not in args]
    if missing:
        raise ConfigError(f"distillation loss '{name}': missing argument(s) {', '.join(missing)}", hint=hint)
    # Check types with the constructor's annotations (YAML gives strings, ints for floats...).
    hints = typing.get_type_hints(cls.__init__)
    fields: dict[str, Any] = {
        k: (hints.get(k, Any), ... if p.default is p.empty else p.default) for k, p in params.items()
    }
    model = create_model(f"{cls.__name__}Args", __config__=ConfigDict(extra="forbid"), **fields)
    try:
        checked = model(**args)
    except ValidationError as exc:
        problems = "; ".join(
            f"'{'.'.join(str(p) for p in err['loc'])}': {err['msg']} (got {err.get('input')!r})"
            for err in exc.errors()
        )
        raise ConfigError(f"distillation loss '{name}': {problems}", hint=hint) from None
    return {k: getattr(checked, k) for k in args}
