"""``factorize(model, config)``: replace layers by low-rank blocks, recording replayable changes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import Tensor, nn

from slimkit.errors import ConfigError
from slimkit.evaluate import count_macs, count_params, fixed_threads
from slimkit.export.serialize import CHANGES, record_change, record_report
from slimkit.factorization import cp, svd, tucker
from slimkit.factorization.config import CP, SVD, Tucker
from slimkit.factorization.rank import (
    Candidate,
    Method,
    Ranks,
    check_ranks,
    energy_rank,
    layer_cost,
    round_ranks,
    solve_budget,
    worthwhile,
)
from slimkit.registry import Dispatch
from slimkit.select import select_modules
from slimkit.transform.surgery import (
    example_input,
    get_layer,
    layer_geometry,
    replace_module,
    require_input,
)

METHODS: dict[type, Method] = {SVD: svd.METHOD, Tucker: tucker.METHOD, CP: cp.METHOD}
#: ``factorize``'s implementations by config type.
FACTORIZE: Dispatch = Dispatch("factorize")
_BY_NAME = {m.name: m for m in METHODS.values()}


@dataclass
class FactorizeReport:
    """What ``factorize`` did: one entry per factorized layer, and every skipped layer with why.

    ``layers`` entries hold name, method, ranks, params/macs before and after. Totals are the
    whole model's (MACs per sample; 0 when no example input was available).
    """

    method: str
    layers: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0
    macs_before: int = 0
    macs_after: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _target_ranks(cand: Candidate, config: SVD | Tucker | CP) -> Ranks | None:
    fixed = config._fixed()
    if fixed is not None:
        ranks = (fixed,) if isinstance(fixed, int) else tuple(fixed)
        return check_ranks(cand.name, ranks, cand.max_ranks)
    if config.energy is not None:
        ranks = round_ranks(tuple(energy_rank(s, config.energy) for s in cand.spectra), cand.max_ranks,
                            config.round_to, up=True)
        return ranks if worthwhile(cand, ranks, "params") else None
    return None


def factorize(model: nn.Module, config: SVD | Tucker | CP, loader: Iterable[Any] | None = None, *,
              example_inputs: Any = None) -> nn.Module:
    """Replace the selected Linear/Conv2d layers of ``model`` (in place) by low-rank blocks.

    Returns the model; ``report_of(model, "factorize")`` is its :class:`FactorizeReport`. Layers that
    cannot be factorized, or whose factorized form would not be cheaper, are skipped and listed
    with the reason. Each change is recorded so that ``load_model`` rebuilds the structure.
    ``example_inputs`` (one batch, or the first batch of ``loader``) sizes MACs; registry models
    need none. Deep-copy the model first to keep the original (e.g. to recover from it with
    ``slimkit.recover``).

    >>> import torch
    >>> from slimkit.export import report_of
    >>> from slimkit.models import build_model
    >>> net = factorize(build_model("mlp", hidden=[64], input_size=8), SVD(rank=4, include=["features.*"]))
    >>> report = report_of(net, "factorize")
    >>> report["layers"][0]["ranks"], report["params_after"] < 64 * 65 + 650
    ([4], True)
    """
    return FACTORIZE.lookup(config)(model, config, loader, example_inputs)


@FACTORIZE.register(SVD)
@FACTORIZE.register(Tucker)
@FACTORIZE.register(CP)
def _low_rank(model: nn.Module, config: SVD | Tucker | CP, loader: Iterable[Any] | None, example_inputs: Any) -> nn.Module:
    method = METHODS[type(config)]
    if example_inputs is None and loader is not None:
        from slimkit.modelio import example_from

        example_inputs = example_from(loader)
    # The matrices are small: extra threads cost more in synchronisation than they save, and on a
    # loaded machine they can make an SVD a hundred times slower.
    with fixed_threads(1):
        return _factorize(model, config, method, example_inputs)


def _factorize(model: nn.Module, config: SVD | Tucker | CP, method: Method, example_inputs: Tensor | None) -> nn.Module:
    budget = config.budget()
    needs_input = budget is not None and budget[0] == "macs"
    inputs = require_input(model, example_inputs, "a MAC target") if needs_input else None
    if inputs is None:
        inputs = example_input(model, example_inputs)
    report = FactorizeReport(method.name, params_before=count_params(model),
                             macs_before=count_macs(model, inputs[:1]) if inputs is not None else 0)
    chosen = select_modules(model, config.include, exclude=config.exclude, types=(nn.Linear, nn.Conv2d))
    cands: dict[str, Candidate] = {}
    geoms = layer_geometry(model, list(chosen), inputs)
    for name, module in chosen.items():
        reason = method.supports(module)
        if reason:
            report.skipped.append({"layer": name, "reason": reason})
            continue
        spectra = method.spectra(module)
        geom = geoms[name]
        cands[name] = Candidate(name, method.max_ranks(module), [s for s, _ in spectra], [sh for _, sh in spectra],
                                lambda r, m=module, g=geom: method.cost(m, g, r), layer_cost(module, geom))
    if budget is not None:
        kind, ratio = budget
        total = report.params_before if kind == "params" else report.macs_before
        fixed = total - sum(c.original[0 if kind == "params" else 1] for c in cands.values())
        plan = solve_budget(list(cands.values()), config.allocation, kind, ratio * total, fixed,
                            config.round_to) if cands else {}
    elif config.allocation == "vbmf":
        plan = {}
        for c in cands.values():
            ranks = round_ranks(tuple(min(m, v) for m, v in zip(c.max_ranks, _vbmf(c))), c.max_ranks, config.round_to)
            plan[c.name] = ranks if worthwhile(c, ranks, "params") else None
    else:
        plan = {name: _target_ranks(c, config) for name, c in cands.items()}
    for name, ranks in plan.items():
        cand = cands[name]
        if ranks is None:
            report.skipped.append({"layer": name, "reason": "at the ranks the target allows, the factorized "
                                   "layer would not be smaller than the original"})
            continue
        replace_module(model, name, method.decompose(chosen[name], ranks, config))
        record_change(model, "factorize", layer=name, method=method.name, ranks=list(ranks))
        params, macs = cand.cost(ranks)
        report.layers.append({"layer": name, "method": method.name, "ranks": list(ranks),
                              "params_before": cand.original[0], "params_after": params,
                              "macs_before": cand.original[1] if inputs is not None else 0,
                              "macs_after": macs if inputs is not None else 0})
    report.params_after = count_params(model)
    report.macs_after = count_macs(model, inputs[:1]) if inputs is not None else 0
    record_report(model, "factorize", report.to_dict())
    return model


def _vbmf(cand: Candidate) -> Ranks:
    from slimkit.factorization.rank import vbmf_rank

    return tuple(vbmf_rank(s, shape) for s, shape in zip(cand.spectra, cand.shapes))


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
