"""Planning a factorization: which layers, at which ranks, and why the others are left alone.

:func:`plan_factorization` only reads the model (one traced forward pass, the layers' spectra);
``apply.py`` then builds the factorized blocks and swaps them in. A selected Linear/Conv2d is
left alone, with the reason recorded, when

- it is already part of a factorized block;
- its parent reads its weight directly instead of calling it: ``nn.MultiheadAttention``'s
  ``out_proj``, and ``nn.TransformerEncoderLayer``'s ``linear1``/``linear2`` (its inference fast
  path hands their weights to one fused kernel, so a factorized layer would run dense there);
- it is the classifier head (see :mod:`slimkit.transform.heads`) and ``include_head`` is off;
- it is a patch embedding (a convolution whose stride is its kernel) and ``include_embeddings`` is off;
- it did not run as a module on the example inputs;
- the method cannot factorize it (e.g. a depthwise conv), or its factorized form at the ranks
  the target allows would not be smaller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from slimkit.errors import ConfigError
from slimkit.factorization.blocks import BLOCKS
from slimkit.factorization.config import CP, SVD, Tucker
from slimkit.factorization.rank import (
    Candidate,
    Method,
    Ranks,
    at_least,
    check_ranks,
    energy_rank,
    layer_cost,
    minimum_ranks,
    round_ranks,
    solve_budget,
    vbmf_rank,
    worthwhile,
)
from slimkit.select import select_modules
from slimkit.transform.heads import logit_layers
from slimkit.transform.surgery import Geometry, trace_layers

Config = SVD | Tucker | CP

#: Children whose weights their parent reads directly (parent type -> child names -> why).
READ_BY_PARENT: dict[type[nn.Module], tuple[tuple[str, ...], str]] = {
    nn.MultiheadAttention: (("out_proj",), ("nn.MultiheadAttention reads out_proj's weight directly "
                            "(F.multi_head_attention_forward), so a factorized out_proj would never run")),
    nn.TransformerEncoderLayer: (("linear1", "linear2"), ("nn.TransformerEncoderLayer's inference fast path "
                                 "reads linear1/linear2's weights directly, so a factorized layer would run dense there")),
}


@dataclass
class FactorizationPlan:
    """What :func:`plan_factorization` decided: the ``ranks`` of each layer to factorize, every
    selected layer left alone with why (``skipped``), the classifier ``heads`` found, the layers
    given ranks below their floor (``below_min_rank``, only by an explicit ``rank``), and the
    model's totals before (MACs per sample; 0 without example inputs)."""

    method: Method
    inputs: Any
    params_before: int
    macs_before: int
    candidates: dict[str, Candidate] = field(default_factory=dict)
    ranks: dict[str, Ranks] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    heads: list[str] = field(default_factory=list)
    below_min_rank: list[str] = field(default_factory=list)


def _parent_reason(model: nn.Module, name: str) -> str | None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    if isinstance(parent, BLOCKS):
        return f"part of a factorized block ({type(parent).__name__} '{parent_name}') already"
    for kind, (children, why) in READ_BY_PARENT.items():
        if isinstance(parent, kind) and child in children:
            return why
    return None


def _heads(model: nn.Module, config: Config, inputs: Any) -> list[str]:
    if config.include_head:
        return []
    if inputs is None:
        raise ConfigError(
            f"factorize leaves {type(model).__name__}'s classifier head alone, and finding it needs example "
            "inputs: the model recorded no input spec",
            hint="pass example_inputs=... (one input batch) or a loader, or set include_head=True",
        )
    return logit_layers(model, inputs)


def _patch_embedding(module: nn.Module) -> bool:
    return (isinstance(module, nn.Conv2d) and module.kernel_size == module.stride
            and max(module.kernel_size) > 1 and module.groups == 1)


def _why_not(model: nn.Module, name: str, module: nn.Module, method: Method, heads: list[str],
             ran: dict[str, Geometry] | None, include_embeddings: bool = False) -> str | None:
    reason = _parent_reason(model, name)
    if reason:
        return reason
    if name in heads:
        return "classifier head (its output is the model's logits): set include_head=True to factorize it"
    if not include_embeddings and _patch_embedding(module):
        return "patch embedding (a convolution whose stride is its kernel): set include_embeddings=True to factorize it"
    if ran is not None and name not in ran:
        return ("did not run as a module on the example inputs (unused, or its parent reads its weight "
                "directly), so a factorized form would never be called")
    return method.supports(module)


def _candidate(name: str, module: nn.Module, method: Method, geom: Geometry, config: Config) -> Candidate:
    spectra = method.spectra(module)
    max_ranks = method.max_ranks(module)
    return Candidate(name, max_ranks, [s for s, _ in spectra], [sh for _, sh in spectra],
                     lambda r, m=module, g=geom: method.cost(m, g, r), layer_cost(module, geom),
                     min_ranks=minimum_ranks(max_ranks, config.min_rank))


def _fixed_or_energy(cand: Candidate, config: Config) -> Ranks | None:
    fixed = config._fixed()
    if fixed is not None:  # as asked, even below the floor (the plan lists it, factorize warns)
        return check_ranks(cand.name, (fixed,) if isinstance(fixed, int) else tuple(fixed), cand.max_ranks)
    if config.energy is not None:
        ranks = tuple(energy_rank(s, config.energy) for s in cand.spectra)
    else:  # allocation="vbmf" with no budget
        ranks = tuple(min(m, vbmf_rank(s, shape)) for m, s, shape in zip(cand.max_ranks, cand.spectra, cand.shapes))
    ranks = at_least(round_ranks(ranks, cand.max_ranks, config.round_to, up=config.energy is not None),
                     cand.floor(), cand.max_ranks, config.round_to)
    return ranks if worthwhile(cand, ranks, "params") else None


def _choose_ranks(plan: FactorizationPlan, config: Config) -> dict[str, Ranks | None]:
    cands = plan.candidates
    budget = config.budget()
    if budget is None:
        return {name: _fixed_or_energy(c, config) for name, c in cands.items()}
    if not cands:
        return {}
    kind, ratio = budget
    index = 0 if kind == "params" else 1
    total = plan.params_before if kind == "params" else plan.macs_before
    fixed = total - sum(c.original[index] for c in cands.values())
    return solve_budget(list(cands.values()), config.allocation, kind, ratio * total, fixed, config.round_to)


def plan_factorization(model: nn.Module, config: Config, method: Method, inputs: Any, *,
                       params_before: int, macs_before: int) -> FactorizationPlan:
    """Decide which selected layers to factorize at which ranks, and why the others are left
    alone. Reads ``model`` and changes nothing. ``inputs`` (one example, or None) find the head and
    the layers' geometry; the totals size a global budget."""
    plan = FactorizationPlan(method, inputs, params_before, macs_before)
    chosen = select_modules(model, config.include, exclude=config.exclude, types=(nn.Linear, nn.Conv2d))
    plan.heads = _heads(model, config, inputs)
    ran = trace_layers(model, list(chosen), inputs) if inputs is not None else None
    for name, module in chosen.items():
        reason = _why_not(model, name, module, method, plan.heads, ran, config.include_embeddings)
        if reason:
            plan.skipped.append({"layer": name, "reason": reason})
            continue
        geom = ran[name] if ran is not None else Geometry()
        plan.candidates[name] = _candidate(name, module, method, geom, config)
    for name, ranks in _choose_ranks(plan, config).items():
        cand = plan.candidates[name]
        if ranks is None:
            plan.skipped.append({"layer": name, "reason": (
                f"at the ranks the target allows (at least {list(cand.floor())}, see min_rank), the factorized "
                "layer would not be smaller than the original")})
            continue
        plan.ranks[name] = ranks
        if any(r < f for r, f in zip(ranks, cand.floor())):
            plan.below_min_rank.append(name)
    return plan
