"""``factorize(model, config)``: replace layers by low-rank blocks, recording replayable changes."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from slimkit.errors import ConfigError, ModelError
from slimkit.evaluate import count_macs, count_params, fixed_threads
from slimkit.export.serialize import CHANGES, record_change, record_report
from slimkit.factorization import cp, svd, tucker
from slimkit.factorization.config import CP, SVD, Tucker
from slimkit.factorization.plan import FactorizationPlan, plan_factorization
from slimkit.factorization.rank import Method
from slimkit.modelio import take
from slimkit.registry import Dispatch
from slimkit.transform.surgery import (
    CompressionWarning,
    example_input,
    get_layer,
    replace_module,
    require_input,
)

METHODS: dict[type, Method] = {SVD: svd.METHOD, Tucker: tucker.METHOD, CP: cp.METHOD}
#: ``factorize``'s implementations by config type.
FACTORIZE: Dispatch = Dispatch("factorize")
_BY_NAME = {m.name: m for m in METHODS.values()}
#: A budget counts as met up to this share of itself (MACs measured by the FLOP counter may
#: differ from the per-layer cost model by a few operations).
TOLERANCE = 0.01


class FactorizationWarning(CompressionWarning):
    """``factorize`` missed its target, factorized nothing, or cut a layer below the minimum rank."""


@dataclass
class FactorizeReport:
    """What ``factorize`` did: one entry per factorized layer, and every skipped layer with why.

    ``layers`` entries hold name, method, ranks, params/macs before and after. Totals are the
    whole model's (MACs per sample; 0 when no example input was available). ``target`` is what
    was asked (``{"target_macs": 0.5}``, ``{"rank": [8]}``...), ``achieved`` the share of the
    params and MACs kept (MACs None without example inputs), ``met`` whether a budget was met
    (or, without one, whether any layer was factorized); ``heads`` the classifier layers left
    alone, ``below_min_rank`` the layers cut below ``min_rank``, ``warnings`` what was warned.
    """

    method: str
    layers: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0
    macs_before: int = 0
    macs_after: int = 0
    target: dict[str, Any] = field(default_factory=dict)
    achieved: dict[str, float | None] = field(default_factory=dict)
    met: bool = False
    min_rank: int = 1
    heads: list[str] = field(default_factory=list)
    below_min_rank: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def factorize(model: nn.Module, config: SVD | Tucker | CP, loader: Iterable[Any] | None = None, *,
              example_inputs: Any = None) -> nn.Module:
    """Replace the selected Linear/Conv2d layers of ``model`` (in place) by low-rank blocks.

    Returns the model; ``report_of(model, "factorize")`` is its :class:`FactorizeReport`. Layers that
    cannot be factorized, or whose factorized form would not be cheaper, are skipped and listed
    with the reason; the classifier head is left alone unless ``include_head=True``. A missed
    budget, a model with nothing to factorize and ranks below ``min_rank`` raise a
    :class:`FactorizationWarning` (with the achieved ratio and the reasons). Each change is
    recorded so that ``load_model`` rebuilds the structure. ``example_inputs`` (model inputs as
    :mod:`slimkit.modelio` reads them), else the model's recorded input spec, else the first
    batch of ``loader``, find the head and size MACs. Deep-copy the model first to keep the
    original (e.g. to recover from it with ``slimkit.recover``).

    >>> import torch
    >>> from slimkit.export import report_of
    >>> from slimkit.models import build_model
    >>> net = factorize(build_model("mlp", hidden=[64], input_size=8), SVD(rank=8, include=["features.*"]))
    >>> report = report_of(net, "factorize")
    >>> report["layers"][0]["ranks"], report["params_after"] < 64 * 65 + 650, report["heads"]
    ([8], True, ['classifier.out'])
    """
    return FACTORIZE.lookup(config)(model, config, loader, example_inputs)


@FACTORIZE.register(SVD)
@FACTORIZE.register(Tucker)
@FACTORIZE.register(CP)
def _low_rank(model: nn.Module, config: SVD | Tucker | CP, loader: Iterable[Any] | None, example_inputs: Any) -> nn.Module:
    method = METHODS[type(config)]
    budget = config.budget()
    if budget is not None and budget[0] == "macs":
        inputs = require_input(model, example_inputs, "a MAC target", loader)
    else:
        inputs = example_input(model, example_inputs, loader)
    inputs = take(inputs, 1) if inputs is not None else None
    # The matrices are small: extra threads cost more in synchronisation than they save, and on a
    # loaded machine they can make an SVD a hundred times slower.
    with fixed_threads(1):
        plan = plan_factorization(model, config, method, inputs, params_before=count_params(model),
                                  macs_before=count_macs(model, inputs) if inputs is not None else 0)
        report = apply_plan(model, plan, config)
    for message in report.warnings:
        warnings.warn(message, FactorizationWarning, stacklevel=3)
    return model


def apply_plan(model: nn.Module, plan: FactorizationPlan, config: SVD | Tucker | CP) -> FactorizeReport:
    """Build every planned block, then swap them all in and record each change (so a failing
    decomposition leaves the model as it was); returns the report, also recorded on the model."""
    method = plan.method
    blocks = {name: _decompose(model, method, name, ranks, config) for name, ranks in plan.ranks.items()}
    report = FactorizeReport(method.name, skipped=list(plan.skipped), params_before=plan.params_before,
                             macs_before=plan.macs_before, target=_target(config), min_rank=config.min_rank,
                             heads=list(plan.heads), below_min_rank=list(plan.below_min_rank))
    measured = plan.inputs is not None
    for name, block in blocks.items():
        ranks = plan.ranks[name]
        replace_module(model, name, block)
        record_change(model, "factorize", layer=name, method=method.name, ranks=list(ranks))
        cand = plan.candidates[name]
        params, macs = cand.cost(ranks)
        report.layers.append({"layer": name, "method": method.name, "ranks": list(ranks),
                              "params_before": cand.original[0], "params_after": params,
                              "macs_before": cand.original[1] if measured else 0, "macs_after": macs if measured else 0})
    report.params_after = count_params(model)
    report.macs_after = count_macs(model, plan.inputs) if measured else 0
    _judge(report, config)
    record_report(model, "factorize", report.to_dict())
    return report


def _decompose(model: nn.Module, method: Method, name: str, ranks: tuple[int, ...], config: Any) -> nn.Module:
    layer = get_layer(model, name)
    try:
        return method.decompose(layer, ranks, config)
    except Exception as exc:
        raise ModelError(f"{method.name} could not factorize layer '{name}' at ranks {list(ranks)}: {exc}",
                         hint=f"exclude '{name}', or choose other ranks; the model was left unchanged") from exc


def _target(config: SVD | Tucker | CP) -> dict[str, Any]:
    budget = config.budget()
    if budget is not None:
        kind, ratio = budget
        return {f"target_{kind}": ratio, "allocation": config.allocation}
    fixed = config._fixed()
    if fixed is not None:
        return {"rank": [fixed] if isinstance(fixed, int) else list(fixed)}
    if config.energy is not None:
        return {"energy": config.energy}
    return {"allocation": config.allocation}


def _names(names: list[str], most: int = 3) -> str:
    """``a, b, c and 2 more``."""
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _reasons(skipped: list[dict[str, str]]) -> str:
    """The skip reasons, each once, with the layers it applies to."""
    layers: dict[str, list[str]] = {}
    for entry in skipped:
        layers.setdefault(entry["reason"], []).append(entry["layer"])
    if not layers:
        return "no Linear/Conv2d layer was selected"
    return "; ".join(f"{_names(names)}: {reason}" for reason, names in layers.items())


def _judge(report: FactorizeReport, config: SVD | Tucker | CP) -> None:
    """Fill ``achieved`` and ``met``, and the warnings a user must see."""
    params = report.params_after / report.params_before if report.params_before else 1.0
    macs = report.macs_after / report.macs_before if report.macs_before else None
    report.achieved = {"params": params, "macs": macs}
    why = _reasons(report.skipped)
    budget = config.budget()
    name = type(config).__name__
    if budget is not None:
        kind, ratio = budget
        got = params if kind == "params" else macs
        report.met = got is not None and got <= ratio * (1 + TOLERANCE)
        if not report.met:
            kept = f"{got:.2f}" if got is not None else "an unmeasured share"  # a model whose MACs count 0
            report.warnings.append(
                f"{name} kept {kept} of the {kind}, not the {ratio:.2f} asked ({len(report.layers)} layer(s) "
                f"factorized; skipped: {why}). Select more layers, lower min_rank, or set include_head=True")
    else:
        report.met = bool(report.layers)
        if not report.layers:
            report.warnings.append(f"{name} factorized no layer; the model is unchanged (skipped: {why})")
    if report.below_min_rank:
        report.warnings.append(
            f"{name} cut {_names(report.below_min_rank)} below the minimum rank {config.min_rank} "
            "(rank asked explicitly): expect a large accuracy loss; set min_rank lower to accept it silently")


def replay_factorize(model: nn.Module, change: dict[str, Any]) -> nn.Module:
    """Rebuild a recorded factorization's structure (weights come from the saved file)."""
    method = _BY_NAME.get(change.get("method", ""))
    if method is None:
        raise ConfigError(f"unknown factorization method {change.get('method')!r} in the model history",
                          hint=f"known methods: {', '.join(_BY_NAME)}")
    layer = get_layer(model, change["layer"])
    replace_module(model, change["layer"], method.shell(layer, tuple(change["ranks"])))
    return model


CHANGES.add("factorize", replay_factorize)
