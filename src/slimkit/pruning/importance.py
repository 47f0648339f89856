"""Channel importance criteria, one registry: ``IMPORTANCE.get(name)(context) -> scorer``.

A scorer follows Torch-Pruning's contract: ``scorer(group) -> Tensor`` with one score per channel
of a dependency group (higher = more important), accumulated over every coupled layer of the
group. Criteria that need data (taylor, activation) read ``calibration_batches`` batches of
``(x, y, ...)`` from the loader once, when the scorer is made, and leave the model unchanged
(eval mode, no optimizer step, gradients cleared afterwards).

Add your own with ``@IMPORTANCE.register("name", needs_data=False, doc="...")`` on a factory
``factory(context: ScoreContext) -> scorer``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slimkit import modelio
from slimkit.errors import ConfigError
from slimkit.evaluate.cost import reference_kernels
from slimkit.registry import Registry

Scorer = Callable[[Any], "Tensor | None"]


@dataclass
class ScoreContext:
    """What a criterion factory may use: the model, data, and the options of the config."""

    model: nn.Module
    loader: Iterable[Any] | None = None
    normalizer: str | None = "mean"  # "mean" makes scores of different layers comparable (global ranking)
    calibration_batches: int = 8
    activation_stat: str = "mean"
    seed: int = 0


IMPORTANCE: Registry[Callable[[ScoreContext], Scorer]] = Registry("importance criterion")


def _tp_importance() -> Any:
    import torch_pruning as tp  # heavy import, only when pruning really happens

    return tp.importance


@IMPORTANCE.register("l1", needs_data=False, doc="L1 norm of each channel's weights over the group")
def l1(context: ScoreContext) -> Scorer:
    return _tp_importance().GroupMagnitudeImportance(p=1, normalizer=context.normalizer)


@IMPORTANCE.register("l2", needs_data=False, doc="L2 (squared) norm of each channel's weights over the group")
def l2(context: ScoreContext) -> Scorer:
    return _tp_importance().GroupMagnitudeImportance(p=2, normalizer=context.normalizer)


@IMPORTANCE.register("bn_scale", needs_data=False, doc="|gamma| of the BatchNorm after each channel (Network Slimming)")
def bn_scale(context: ScoreContext) -> Scorer:
    # Network Slimming ranks raw |gamma| across the whole net: the sparsity penalty makes them comparable.
    normalizer = None if context.normalizer == "mean" else context.normalizer
    scorer = _tp_importance().BNScaleImportance(normalizer=normalizer)
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in context.model.modules()):
        raise ConfigError(
            f"criterion 'bn_scale' needs BatchNorm layers, and {type(context.model).__name__} has none",
            hint="use criterion 'l1' or 'taylor', or a model with BatchNorm",
        )
    return scorer


@IMPORTANCE.register("random", needs_data=False, doc="uniform random scores (a baseline), seeded")
def random(context: ScoreContext) -> Scorer:
    generator = torch.Generator().manual_seed(context.seed)

    def score(group: Any) -> Tensor:
        return torch.rand(len(group[0].idxs), generator=generator)

    return score


def _batches(context: ScoreContext, name: str) -> list[Any]:
    if context.loader is None:
        raise ConfigError(
            f"criterion '{name}' needs data: pass loader=<DataLoader of (x, y)> to prune()",
            hint="or use a data-free criterion: l1, l2, bn_scale, random",
        )
    batches = list(islice(iter(context.loader), context.calibration_batches))
    if not batches:
        raise ConfigError(f"criterion '{name}': the loader yielded no batches", hint="check the dataset is not empty")
    return batches


def _device(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


@IMPORTANCE.register("taylor", needs_data=True, doc="first-order Taylor |w * dL/dw| summed per channel (Molchanov)")
def taylor(context: ScoreContext) -> Scorer:
    model, device = context.model, _device(context.model)
    was_training = model.training
    model.eval()  # eval: BN running statistics must not move while we only measure
    params = [p for p in model.parameters() if p.requires_grad]
    saved = [p.grad for p in params]
    for p in params:
        p.grad = None
    try:
        with torch.enable_grad():
            for batch in _batches(context, "taylor"):
                parts = modelio.split(modelio.to_device(batch, device))
                if parts.targets is None:
                    raise ConfigError("criterion 'taylor' needs labelled batches: (inputs, labels) or a mapping with 'labels'",
                                      hint="or use a criterion that needs no labels: l1, l2, activation")
                F.cross_entropy(modelio.forward_logits(model, parts.inputs), parts.targets).backward()
        scorer = _tp_importance().GroupTaylorImportance(normalizer=context.normalizer)
        # tp reads .grad when called, so score every group now and serve the cached values.
        return _Frozen(scorer, model, restore=lambda: [setattr(p, "grad", g) for p, g in zip(params, saved)])
    finally:
        model.train(was_training)


class _Frozen:
    """Serves scores computed while gradients existed; ``release`` restores the old gradients."""

    def __init__(self, scorer: Scorer, model: nn.Module, restore: Callable[[], object]) -> None:
        self.scorer, self.model, self.restore = scorer, model, restore
        self.cache: dict[int, Tensor | None] = {}

    def __call__(self, group: Any) -> Tensor | None:
        key = id(group[0].dep.target.module)
        if key not in self.cache:
            self.cache[key] = self.scorer(group)
        return self.cache[key]

    def release(self) -> None:
        self.restore()


@IMPORTANCE.register("activation", needs_data=True, doc="mean post-ReLU activation (or 1 - APoZ) per channel")
def activation(context: ScoreContext) -> Scorer:
    model, device = context.model, _device(context.model)
    layers = [m for m in model.modules() if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._BatchNorm))]
    sums: dict[nn.Module, Tensor] = {}
    counts: dict[nn.Module, int] = {}

    def hook(module: nn.Module, _: Any, output: Tensor) -> None:
        out = output.detach()
        if isinstance(module, nn.Linear):  # channels last, any leading axes: (samples, channels, 1)
            out = out.reshape(-1, out.shape[-1]).unsqueeze(-1)
        else:  # channels on axis 1
            out = out.flatten(2) if out.dim() > 2 else out.unsqueeze(-1)
        stat = (out > 0).float() if context.activation_stat == "apoz" else F.relu(out)
        sums[module] = sums.get(module, 0) + stat.sum(dim=(0, 2)).cpu()
        counts[module] = counts.get(module, 0) + out.shape[0] * out.shape[2]

    handles = [m.register_forward_hook(hook) for m in layers]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), reference_kernels():  # the fused attention path would skip the hooks
            for batch in _batches(context, "activation"):
                modelio.call(model, modelio.split(modelio.to_device(batch, device)).inputs)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    stats = {m: sums[m] / counts[m] for m in sums}
    return _ActivationScorer(stats, context.normalizer)


class _ActivationScorer:
    """Scores a group by the activation statistics of its layers' outputs (BatchNorm preferred)."""

    def __init__(self, stats: dict[nn.Module, Tensor], normalizer: str | None) -> None:
        self.stats = stats
        self.base = _tp_importance().GroupMagnitudeImportance(normalizer=normalizer)

    def __call__(self, group: Any) -> Tensor | None:
        items = [(item.dep.target.module, item.idxs, item.root_idxs) for item in group
                 if item.dep.target.module in self.stats and _is_out(group, item)]
        # The BN output is what the next layer sees (after ReLU); the conv output is pre-normalization.
        bn = [it for it in items if isinstance(it[0], nn.modules.batchnorm._BatchNorm)]
        chosen = bn or items
        if not chosen:
            return None
        imps = [self.stats[m][list(idxs)] for m, idxs, _ in chosen]
        reduced = self.base._reduce(imps, [roots for _, _, roots in chosen])
        return self.base._normalize(reduced + 1e-12, self.base.normalizer)


def _is_out(group: Any, item: Any) -> bool:
    return bool(group._DG.is_out_channel_pruning_fn(item.dep.handler))


def make_scorer(name: str, context: ScoreContext) -> Scorer:
    """The scorer of criterion ``name`` for ``context`` (did-you-mean on unknown names).

    >>> scorer = make_scorer("l1", ScoreContext(nn.Linear(2, 2)))
    >>> type(scorer).__name__
    'GroupMagnitudeImportance'
    """
    return IMPORTANCE.get(name)(context)


def release(scorer: Scorer) -> None:
    """Give back what a scorer held on to (the gradients the taylor criterion borrowed)."""
    if isinstance(scorer, _Frozen):
        scorer.release()
