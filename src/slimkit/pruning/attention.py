"""Structured pruning for transformers: whole attention heads, feed-forward neurons, whole layers.

``prune(model, AttentionPruning(heads=0.5, ffn=0.5), loader)`` removes the least important half
of the heads and of the feed-forward neurons, physically: the projections shrink, the module's
head count and the model's config follow, and the pruned model saves and reloads in a fresh
process (the cut is recorded as a replayable ``prune_attention`` change).

**Importance** (``criterion="taylor"``, Michel et al. 2019, "Are Sixteen Heads Really Better
than One?"): the expected ``|dL/dxi_h|`` of a gate ``xi_h`` on each head's output, over
``calibration_batches`` batches of the loader (cross-entropy on the labels, or on the model's
own predictions when the batches have none). The gate's gradient needs no gate: a head's
output enters the model only through its columns ``W_h`` of the output projection, so
``dL/dxi_h = <W_h, dL/dW_h>`` — it is read from the output projection's weight gradient, for
Hugging Face attention and ``nn.MultiheadAttention`` alike. Scores are normalized per layer
(L2, as in the paper) so that ``allocation="global"`` ranks heads across layers. Feed-forward
neurons are scored the same way on the down projection's columns; whole layers by the sum of
their heads' and neurons' scores. ``"l1"`` uses the output columns' L1 norms, ``"random"``
seeded noise.

**How much**: ``heads`` and ``ffn`` (shares removed), or ``target_macs`` (share of the MACs to
keep, reached by one share for the parts named in ``target_parts``, searched by bisection on
counted MACs); ``layers`` drops that many least important layers (or the listed indices) first.

**Which mix** (``balance="latency"``, with ``target_macs`` over heads and FFN): equal MACs are not
equal time. A head also carries its attention scores, softmax and layout copies, which shrink
with it and which counted MACs barely see, while layer norms and residual adds stay whatever is
cut. So the planner also tries head-heavy mixes (a head share from ``HEAD_SHARES``, the FFN
share then found by bisection for the same MACs), times every candidate model alternating at
``latency_batch_size``, and keeps the fastest. Speed is all it weighs, unless ``min_speedup`` says
how fast is fast enough: then it keeps, among the mixes timed at least that much faster than the
unpruned model (timed in the same alternating run), the one whose outputs move least from the
unpruned model's (KL divergence on the calibration batches, before any fine-tune), and the
fastest where none is fast enough (the report says so). Measured on the 4-layer
ViT of bench/results/transformer.md at half the MACs, batch 32, 2 threads, after a 5-epoch KD
fine-tune: equal shares 1.52x faster and 0.59 points lost, the fastest mix (75% of the heads)
1.71x and 1.20 points, ``min_speedup=1.5`` (62.5% of the heads, the mix that moved the outputs
least of the two timed fast enough while planning) 1.67x and 0.99 points. The outputs' KL before
fine-tuning ranked those three as their losses after it did. What counted MACs miss most is per
layer: ``layers=1`` with the same ``target_macs`` removes as many heads and neurons, but one
layer's whole (its norms, residual adds and softmax go too): 1.57x and 0.29 points lost.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from itertools import islice
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor, nn

from slimkit import modelio
from slimkit.config import Config, Seed
from slimkit.errors import ConfigError, DataError, ModelError
from slimkit.evaluate import count_macs, count_params
from slimkit.pruning.api import PRUNE
from slimkit.pruning.attention_plan import apply_plan
from slimkit.pruning.attention_sites import FFNSite, HeadSite, find_ffns, find_heads, find_stacks
from slimkit.pruning.sandbox import copy_model, output_shapes

SEARCH_STEPS = 12
#: ``balance="latency"``: the head shares tried beside the equal-share mix.
HEAD_SHARES = (0.25, 0.5, 0.625, 0.75)
#: the unpruned model, timed beside the mixes
UNPRUNED = "unpruned"


class AttentionPruning(Config):
    """Remove whole attention heads, feed-forward neurons and layers of a transformer.

    - ``heads`` / ``ffn``: share of the heads / feed-forward neurons removed; or
      ``target_macs``: share of the MACs to keep, met by removing one share of each part in
      ``target_parts``.
    - ``layers``: how many whole layers to drop (the least important), or their indices.
    - ``criterion``: ``taylor`` (Michel et al. 2019, needs a loader), ``l1`` or ``random``.
    - ``allocation``: ``global`` ranks heads (and neurons) across layers by their normalized
      scores; ``uniform`` takes the same share from every layer.
    - ``min_heads``: heads every attention keeps; ``ffn_round_to``: kept neuron counts are
      multiples of it (CPU kernels run widths in multiples of 8 best).
    - ``include`` / ``exclude``: globs on attention module paths and layer paths.
    - ``balance``: with ``target_macs`` over heads and FFN, ``equal`` removes one share of
      each; ``latency`` times mixes of the two at ``latency_batch_size`` (``threads``) and keeps
      the fastest for the same MACs (see the module docstring).
    - ``min_speedup``: with ``balance="latency"``, keep the mix whose outputs change least among
      those at least this much faster than the unpruned model (needs a loader).

    >>> AttentionPruning(heads=0.25).criterion
    'taylor'
    >>> AttentionPruning()
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: AttentionPruning: field '(root)': Value error, say what to remove: set heads, ffn, target_macs or layers (got ...)
      hint: valid fields: heads, ffn, target_macs, target_parts, layers, criterion, allocation, min_heads, ffn_round_to, calibration_batches, include, exclude, balance, min_speedup, latency_batch_size, threads, seed
    """

    heads: float | None = Field(None, gt=0, lt=1)
    ffn: float | None = Field(None, gt=0, lt=1)
    target_macs: float | None = Field(None, gt=0, lt=1)
    target_parts: tuple[Literal["heads", "ffn"], ...] = ("heads", "ffn")
    layers: int | list[int] | None = None
    criterion: Literal["taylor", "l1", "random"] = "taylor"
    allocation: Literal["global", "uniform"] = "global"
    min_heads: int = Field(1, ge=1)
    ffn_round_to: int = Field(1, ge=1)
    calibration_batches: int = Field(8, ge=1)
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    balance: Literal["equal", "latency"] = "equal"
    min_speedup: float | None = Field(None, gt=1)
    latency_batch_size: int = Field(32, ge=1)
    threads: int | None = Field(None, ge=1)
    seed: Seed = 0

    @model_validator(mode="after")
    def _something(self) -> AttentionPruning:
        if self.heads is None and self.ffn is None and self.target_macs is None and self.layers is None:
            raise ValueError("say what to remove: set heads, ffn, target_macs or layers")
        if self.target_macs is not None and (self.heads is not None or self.ffn is not None):
            raise ValueError("give target_macs or the shares heads/ffn, not both")
        if not self.target_parts:
            raise ValueError("target_parts must name heads, ffn or both")
        if isinstance(self.layers, int) and self.layers < 1:
            raise ValueError("layers must be at least 1 (how many to drop), or a list of indices")
        if self.balance == "latency" and (self.target_macs is None or set(self.target_parts) != {"heads", "ffn"}):
            raise ValueError("balance 'latency' mixes heads and FFN for a MACs target: set target_macs and keep "
                             "both in target_parts")
        if self.min_speedup is not None and self.balance != "latency":
            raise ValueError("min_speedup chooses among the mixes that balance 'latency' times: set balance: latency")
        return self


def _selected(name: str, config: AttentionPruning) -> bool:
    return (any(fnmatch.fnmatchcase(name, p) for p in config.include)
            and not any(fnmatch.fnmatchcase(name, p) for p in config.exclude))


# ----------------------------------------------------------------------------------- importance


def _taylor(model: nn.Module, heads: list[HeadSite], ffns: list[FFNSite], loader: Iterable[Any] | None,
            batches: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    if loader is None:
        raise ConfigError("AttentionPruning criterion 'taylor' scores heads on data, and got no loader",
                          hint="pass a loader (prune(model, config, loader)), or use criterion='l1'")
    outs = {s.name: model.get_submodule(s.out).weight for s in heads}
    downs = {s.name: model.get_submodule(s.down).weight for s in ffns}
    wanted = {id(w) for w in [*outs.values(), *downs.values()]}
    flags = {p: p.requires_grad for p in model.parameters()}
    head_scores = {s.name: torch.zeros(s.heads) for s in heads}
    ffn_scores = {s.name: torch.zeros(s.width) for s in ffns}
    was_training, seen = model.training, 0
    try:
        model.eval()
        for p in model.parameters():
            p.requires_grad_(id(p) in wanted)
            p.grad = None
        device = next(model.parameters()).device
        for batch in islice(loader, batches):
            part = modelio.split(batch)
            with torch.enable_grad():
                logits = modelio.forward_logits(model, modelio.to_device(part.inputs, device))
                target = part.targets.to(device) if part.targets is not None else logits.detach().argmax(-1)
                F.cross_entropy(logits.float(), target.long()).backward()
            for s in heads:
                w = outs[s.name]
                gate = (w.detach() * w.grad).view(w.shape[0], s.heads, s.head_size).sum((0, 2))
                head_scores[s.name] += gate.abs().cpu()
            for s in ffns:
                w = downs[s.name]
                ffn_scores[s.name] += (w.detach() * w.grad).sum(0).abs().cpu()
            for w in [*outs.values(), *downs.values()]:
                w.grad = None
            seen += 1
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)
            p.grad = None
        model.train(was_training)
    if not seen:
        raise DataError("the loader yielded no batches to score heads on", hint="pass a non-empty loader")
    return head_scores, ffn_scores


def scores(model: nn.Module, heads: list[HeadSite], ffns: list[FFNSite], config: AttentionPruning,
           loader: Iterable[Any] | None) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Raw per-head and per-neuron importance (higher = more important)."""
    if config.criterion == "taylor":
        return _taylor(model, heads, ffns, loader, config.calibration_batches)
    if config.criterion == "random":
        generator = torch.Generator().manual_seed(config.seed)
        return ({s.name: torch.rand(s.heads, generator=generator) for s in heads},
                {s.name: torch.rand(s.width, generator=generator) for s in ffns})
    head_scores = {}
    for s in heads:
        w = model.get_submodule(s.out).weight.detach().abs()
        head_scores[s.name] = w.view(w.shape[0], s.heads, s.head_size).sum((0, 2)).cpu()
    return head_scores, {s.name: model.get_submodule(s.down).weight.detach().abs().sum(0).cpu() for s in ffns}


def normalized(values: dict[str, Tensor]) -> dict[str, Tensor]:
    """Each layer's scores divided by their L2 norm (Michel et al.), so layers compare."""
    return {k: v / v.norm().clamp_min(1e-12) for k, v in values.items()}


# ------------------------------------------------------------------------------------ planning


def _lowest(values: dict[str, Tensor], share: float, floor: dict[str, int], allocation: str,
            step: dict[str, int] | None = None) -> dict[str, list[int]]:
    """Indices to remove per layer: ``share`` of all positions, lowest scores first, each layer
    keeping at least ``floor`` (and multiples of ``step``)."""
    step = step or {}
    counts: dict[str, int] = {}
    if allocation == "uniform":
        counts = {k: round(share * len(v)) for k, v in values.items()}
    else:
        entries = sorted((float(s), k) for k, v in normalized(values).items() for s in v)
        budget = round(share * sum(len(v) for v in values.values()))
        counts = dict.fromkeys(values, 0)
        for _, k in entries[:budget]:
            counts[k] += 1
    plan = {}
    for k, v in values.items():
        keep = max(floor[k], len(v) - counts[k])
        size = step.get(k, 1)
        if size > 1 and len(v) > size:
            keep = min(len(v), max(size, round(keep / size) * size))
        if keep < len(v):
            plan[k] = sorted(torch.argsort(v, stable=True)[: len(v) - keep].tolist())
    return plan


def _layer_drops(model: nn.Module, config: AttentionPruning, head_scores: dict[str, Tensor],
                 ffn_scores: dict[str, Tensor], heads: list[HeadSite], ffns: list[FFNSite]) -> dict[str, list[int]]:
    if config.layers is None:
        return {}
    stacks = find_stacks(model)
    if not stacks:
        raise ModelError(f"{type(model).__name__} has no layer stack to drop layers from",
                         hint="layers works on nn.TransformerEncoder and Hugging Face encoders")
    drops = {}
    for stack, layers in stacks.items():
        if isinstance(config.layers, list):
            wrong = [i for i in config.layers if not 0 <= i < len(layers)]
            if wrong or len(set(config.layers)) >= len(layers):
                raise ConfigError(f"AttentionPruning.layers: {config.layers} does not fit '{stack}' "
                                  f"({len(layers)} layers; at least one must stay)")
            drops[stack] = sorted(set(config.layers))
            continue
        if config.layers >= len(layers):
            raise ConfigError(f"AttentionPruning.layers: cannot drop {config.layers} of the {len(layers)} layers "
                              f"of '{stack}'", hint=f"drop at most {len(layers) - 1}")
        total = torch.zeros(len(layers))
        for s in heads:
            if s.stack == stack:
                total[s.layer] += head_scores[s.name].sum()
        for s in ffns:
            if s.stack == stack:
                total[s.layer] += ffn_scores[s.name].sum()
        chosen = [i for i in torch.argsort(total, stable=True).tolist() if _selected(f"{stack}.{i}", config)]
        drops[stack] = sorted(chosen[: config.layers])
    return drops


class AttentionPlanner:
    """Scores once, then plans removals for any share and counts what they cost."""

    def __init__(self, model: nn.Module, config: AttentionPruning, loader: Iterable[Any] | None, example: Any) -> None:
        self.model, self.config, self.example = model, config, modelio.take(example, 1)
        heads, ffns = find_heads(model), find_ffns(model)
        if not heads and not ffns:
            raise ModelError(f"{type(model).__name__} has no attention heads or feed-forward blocks slimkit recognizes",
                             hint="AttentionPruning works on nn.MultiheadAttention, nn.TransformerEncoder and "
                                  "Hugging Face BERT/ViT-style models; use StructuredPruning for others")
        head_scores, ffn_scores = scores(model, heads, ffns, config, loader)
        self.layers = _layer_drops(model, config, head_scores, ffn_scores, heads, ffns)
        # The rest is planned on the model without its dropped layers: names shift down.
        self.base = copy_model(model)
        apply_plan(self.base, layers=self.layers)
        rename = _renames(heads, ffns, self.layers)
        self.heads = [s for s in find_heads(self.base) if _selected(s.name, config)]
        self.ffns = [s for s in find_ffns(self.base)
                     if any(_selected(n, config) for n in (s.name, s.up, s.down))]
        self.head_scores = {rename[k]: v for k, v in head_scores.items() if rename.get(k) in {s.name for s in self.heads}}
        self.ffn_scores = {rename[k]: v for k, v in ffn_scores.items() if rename.get(k) in {s.name for s in self.ffns}}
        self.base_macs = count_macs(model, self.example)
        self.loader = loader
        self.timings: dict[str, float] = {}  # balance="latency": median ms of each mix tried (and UNPRUNED)
        self.speedups: dict[str, float] = {}  # ... each mix against the unpruned model
        self.drift: dict[str, float] = {}  # min_speedup: KL of each mix's outputs from the unpruned model's
        self.mix = ""  # ... and the one kept

    def plan(self, head_share: float | None, ffn_share: float | None) -> tuple[dict, dict]:
        cfg = self.config
        heads = (_lowest(self.head_scores, head_share, {s.name: min(cfg.min_heads, s.heads) for s in self.heads},
                         cfg.allocation) if head_share else {})
        ffn = (_lowest(self.ffn_scores, ffn_share, {s.name: min(cfg.ffn_round_to, s.width) for s in self.ffns},
                       cfg.allocation, {s.name: cfg.ffn_round_to for s in self.ffns}) if ffn_share else {})
        return heads, ffn

    def macs(self, heads: dict, ffn: dict) -> int:
        model = copy_model(self.base)
        apply_plan(model, heads=heads, ffn=ffn)
        return count_macs(model, self.example)

    def solve(self) -> tuple[dict, dict]:
        cfg = self.config
        if cfg.target_macs is None:
            return self.plan(cfg.heads, cfg.ffn)
        goal = cfg.target_macs * self.base_macs

        def shares(s: float) -> tuple[float | None, float | None]:
            return (s if "heads" in cfg.target_parts else None, s if "ffn" in cfg.target_parts else None)

        equal = self._bisect(lambda s: self.plan(*shares(s)), goal)
        if equal is None:
            raise ModelError(f"AttentionPruning.target_macs: cannot keep only {cfg.target_macs:.0%} of the MACs by "
                             f"removing {' and '.join(cfg.target_parts)} (every layer keeps min_heads and one neuron)",
                             hint="relax target_macs, add 'ffn' to target_parts, or drop layers")
        if cfg.balance == "equal":
            return equal
        mixes = {"equal shares": equal}
        for head_share in HEAD_SHARES:
            found = self._bisect(lambda s, h=head_share: self.plan(h, s), goal)
            if found is not None:
                mixes[f"heads {head_share:g}"] = found
        return self._choose(mixes)

    def _bisect(self, plan_for: Any, goal: float) -> tuple[dict, dict] | None:
        """The plan for the smallest share (of what ``plan_for`` varies) that meets ``goal``
        MACs, or None where even the largest does not."""
        hi = 1.0 - 1e-6
        if self.macs(*plan_for(hi)) > goal:
            return None
        lo = 0.0
        for _ in range(SEARCH_STEPS):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if self.macs(*plan_for(mid)) <= goal else (mid, hi)
        return plan_for(hi)

    def _choose(self, mixes: dict[str, tuple[dict, dict]]) -> tuple[dict, dict]:
        """The mix whose model runs fastest at ``latency_batch_size``, timed alternating with the
        unpruned model; with ``min_speedup``, the least changed of those fast enough."""
        from slimkit.evaluate import measure_latency

        models = {}
        for name, (heads, ffn) in mixes.items():
            models[name] = copy_model(self.base)
            apply_plan(models[name], heads=heads, ffn=ffn)
        b = self.config.latency_batch_size
        timed = measure_latency({**models, UNPRUNED: self.model}, self.example, batch_sizes=(b,), warmup=2,
                                repeats=10, threads=self.config.threads, memory=False, settle=True)
        self.timings = {name: timed[name][b]["median_ms"] for name in [*mixes, UNPRUNED]}
        self.speedups = {name: self.timings[UNPRUNED] / self.timings[name] for name in mixes}
        self.mix = max(self.speedups, key=self.speedups.__getitem__)
        if self.config.min_speedup is not None:
            self.drift = self._drift(models)
            fast = [name for name in mixes if self.speedups[name] >= self.config.min_speedup]
            if fast:
                self.mix = min(fast, key=self.drift.__getitem__)
        return mixes[self.mix]

    def _drift(self, models: dict[str, nn.Module]) -> dict[str, float]:
        """Mean KL(unpruned ‖ cut) of each model's outputs over the calibration batches."""
        if self.loader is None:
            raise ConfigError("AttentionPruning.min_speedup compares the mixes' outputs on data, and got no loader",
                              hint="pass a loader (prune(model, config, loader))")
        from slimkit.evaluate.predict import eval_mode

        device = next(self.model.parameters()).device
        totals, seen = dict.fromkeys(models, 0.0), 0
        for model in models.values():
            model.eval()  # throwaway copies
        with torch.no_grad(), eval_mode(self.model):  # the model being pruned keeps its own mode
            for batch in islice(self.loader, self.config.calibration_batches):
                inputs = modelio.to_device(modelio.split(batch).inputs, device)
                reference = F.log_softmax(modelio.forward_logits(self.model, inputs).float(), -1)
                for name, model in models.items():
                    cut = F.log_softmax(modelio.forward_logits(model, inputs).float(), -1)
                    totals[name] += float(F.kl_div(cut, reference, log_target=True, reduction="batchmean"))
                seen += 1
        return {name: total / max(seen, 1) for name, total in totals.items()}


def _renames(heads: list[HeadSite], ffns: list[FFNSite], drops: dict[str, list[int]]) -> dict[str, str]:
    """Old site name -> its name once ``drops`` are removed (sites in dropped layers vanish)."""
    out = {}
    for s in [*heads, *ffns]:
        if s.stack is None or s.stack not in drops:
            out[s.name] = s.name
            continue
        if s.layer in drops[s.stack]:
            continue
        new = s.layer - sum(1 for d in drops[s.stack] if d < s.layer)
        prefix = f"{s.stack}.{s.layer}"
        out[s.name] = f"{s.stack}.{new}" + s.name[len(prefix):]
    return out


# ---------------------------------------------------------------------------------------- verb


@PRUNE.register(AttentionPruning)
def prune_attention(model: nn.Module, config: AttentionPruning, loader: Iterable[Any] | None = None,
                    example_inputs: Any = None) -> nn.Module:
    """Remove heads, neurons and layers from ``model`` as ``config`` says (on a copy, swapped in on
    success), and record the change."""
    from slimkit.export.serialize import record_change, record_report
    from slimkit.pruning.surgery import adopt

    work = copy_model(model)
    example = modelio.example_for(work, example_inputs, loader, n=1)
    if example is None:
        raise ConfigError("AttentionPruning needs example inputs to count MACs and check the cut",
                          hint="pass a loader or example_inputs=<one input batch>")
    shapes = output_shapes(work, example)
    planner = AttentionPlanner(work, config, loader, example)
    heads, ffn = planner.solve()
    before = {"macs": planner.base_macs, "params": count_params(work), "heads": _head_counts(work),
              "ffn": {s.name: s.width for s in find_ffns(work)}, "depth": {k: len(v) for k, v in find_stacks(work).items()}}
    apply_plan(work, layers=planner.layers, heads=heads, ffn=ffn)
    if output_shapes(work, example) != shapes:
        raise ModelError(f"pruning attention changed the output shapes of {type(model).__name__}; the model was "
                         "left unchanged", hint="exclude the layers that produce the outputs")
    after = {"macs": count_macs(work, modelio.take(example, 1)), "params": count_params(work),
             "heads": _head_counts(work), "ffn": {s.name: s.width for s in find_ffns(work)},
             "depth": {k: len(v) for k, v in find_stacks(work).items()}}
    report = {"criterion": config.criterion, "config": config.to_dict(), "before": before, "after": after,
              "macs": [before["macs"], after["macs"]], "params": [before["params"], after["params"]],
              "achieved": after["macs"] / max(before["macs"], 1)}
    if planner.timings:
        report["mixes_ms"] = {"batch_size": config.latency_batch_size, **planner.timings}
        report["mixes_speedup"] = planner.speedups
        report["mix"] = planner.mix
    if planner.drift:
        report["mixes_kl"] = planner.drift
        report["min_speedup_met"] = planner.speedups[planner.mix] >= (config.min_speedup or 0)
    modelio.remember_inputs(work, modelio.take(example, 1))
    record_report(work, "prune", report)
    record_change(work, "prune_attention", layers=planner.layers, heads=heads, ffn=ffn,
                  macs=report["macs"], params=report["params"])
    adopt(model, work)
    return model


def _head_counts(model: nn.Module) -> dict[str, int]:
    return {s.name: s.heads for s in find_heads(model)}

