"""``prune_structured``: plan and cut on a copy, check it, then swap it into the user's model.

Structured pruning changes many layers, one coupled group at a time. If anything fails part
way (a layer the graph got wrong, a custom pruner that raises, an interrupt), cutting in place
would leave a model that is neither the original nor the pruned one. So the whole cut runs on a
deep copy; only when it has succeeded, and the copy still runs and gives outputs of the same
shapes, is its state moved into the user's model object (:func:`adopt`), which keeps the
module objects the user holds. On failure the user's model is exactly as it was.

What was done is recorded twice in the model's history: a ``report`` (target, achieved share,
channels per group, groups left whole and why) and the replayable ``prune_channels`` change
(the removed indices and the example inputs' spec, so that loading rebuilds the shapes).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

from torch import nn

from slimkit import modelio
from slimkit.errors import ModelError
from slimkit.evaluate import count_macs, count_params
from slimkit.pruning.config import StructuredPruning
from slimkit.pruning.graph import PruningWarning
from slimkit.pruning.sandbox import copy_model, output_shapes
from slimkit.pruning.structured import ChannelPruner, apply_removals, example_for

#: A searched target missed by more than this share of itself is warned about.
TOLERANCE = 0.05


def adopt(target: nn.Module, source: nn.Module) -> None:
    """Give ``target`` the state of ``source``, a changed deep copy of it, keeping ``target``'s
    module objects wherever the copy has a module of the same name and type (so references the
    user holds to submodules stay valid)."""
    olds = dict(target.named_modules(remove_duplicate=False))
    news = dict(source.named_modules(remove_duplicate=False))
    pairs: dict[int, nn.Module] = {}
    for name, new in news.items():
        old = olds.get(name)
        pairs[id(new)] = old if old is not None and type(old) is type(new) else new
    done: set[int] = set()
    for new in news.values():
        old = pairs[id(new)]
        if old is new or id(new) in done:
            continue
        done.add(id(new))
        state = dict(new.__dict__)
        state["_modules"] = {key: (pairs.get(id(child), child) if child is not None else None)
                             for key, child in new._modules.items()}
        old.__dict__.clear()
        old.__dict__.update(state)


def _achieved(config: StructuredPruning, pruner: ChannelPruner, macs: list[int], params: list[int],
              channels: dict[str, list[int]]) -> tuple[float | None, float | None]:
    """The config's goal and what the cut reached, in the same unit (shares of the original for
    MACs and parameters, ms for latency, the share of prunable channels removed for ratio)."""
    target = config.target
    if target == "target_macs":
        return config.target_macs, macs[1] / max(macs[0], 1)
    if target == "target_params":
        return config.target_params, params[1] / max(params[0], 1)
    if target == "latency_ms":
        return config.latency_ms, pruner.reached
    total = sum(g.channels for g in pruner.groups)
    removed = sum(before - after for before, after in channels.values())
    return config.ratio, (removed / total if total else 0.0)


def _warn(report: dict[str, Any]) -> None:
    whole = {name: why for name, why in report["left_whole"].items() if not why.startswith("(")}
    if whole:
        listed = "; ".join(f"'{name}' ({why})" for name, why in whole.items())
        warnings.warn(f"structured pruning left {len(whole)} channel group(s) whole: {listed}", PruningWarning,
                      stacklevel=5)
    goal, reached = report["goal"], report["achieved"]
    if report["searched"] and goal and reached is not None and abs(reached - goal) > TOLERANCE * goal:
        warnings.warn(
            f"structured pruning reached {reached:.3g} for {report['target']}={goal:.3g} ({reached / goal - 1:+.0%}): "
            f"the steps it can cut in are coarse here (groups, heads, round_to) or few layers are prunable",
            PruningWarning, stacklevel=5)


def prune_structured(model: nn.Module, config: StructuredPruning, example_inputs: Any = None, *,
                     loader: Iterable[Any] | None = None) -> nn.Module:
    """Remove channels from ``model`` as ``config`` says (on a copy, swapped in on success), and
    record the change.

    >>> from slimkit.models import build_model
    >>> net = build_model("cnn", channels=[8, 16], hidden=16, input_size=8)
    >>> net = prune_structured(net, StructuredPruning(ratio=0.5))
    >>> net.features[0].conv.out_channels, net.slimkit_history[-1]["kind"]
    (4, 'prune_channels')
    """
    from slimkit.export.serialize import record_change, record_report

    work = copy_model(model)
    example = example_for(work, example_inputs, loader)
    one = modelio.take(example, 1)
    pruner = ChannelPruner(work, config, example, loader=loader)  # probes the model first: errors name the layer
    shapes = output_shapes(work, example)
    removals = pruner.removals(pruner.solve())
    macs, params = [count_macs(work, one)], [count_params(work)]
    channels = apply_removals(work, example, removals, config.exclude, include=config.include)
    if output_shapes(work, example) != shapes:
        raise ModelError(f"pruning changed the output shapes of {type(model).__name__}; the model was left unchanged",
                         hint="exclude the layers that produce the outputs, e.g. exclude=['head']")
    macs.append(count_macs(work, one))
    params.append(count_params(work))
    goal, reached = _achieved(config, pruner, macs, params, channels)
    report = {
        "criterion": config.criterion, "target": config.target, "goal": goal, "achieved": reached,
        "searched": config.target in ("target_macs", "target_params", "latency_ms"),
        "macs": macs, "params": params, "channels": channels,
        "divisions": {g.name: g.divisions for g in pruner.groups if g.divisions > 1},
        "left_whole": dict(pruner.skipped),
    }
    modelio.remember_inputs(work, one)
    record_report(work, "prune", report)
    record_change(work, "prune_channels", inputs=modelio.input_spec(one), removed=removals,
                  keep=list(config.exclude), include=list(config.include), channels=channels,
                  config=config.to_dict(), macs=macs, params=params)
    adopt(model, work)
    _warn(report)
    return model
