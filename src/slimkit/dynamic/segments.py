"""Cut a model into segments that run one after another, at the outputs of chosen layers.

An early exit needs the forward pass to stop after a layer: the model must be a chain at that
point, so that everything later depends on that layer's output alone (no skip connection
crosses it). ``torch.fx`` traces the model with the chosen layers kept whole, checks each one
is such a cut point, and builds one ``GraphModule`` per segment. The segments share the
model's submodules and parameters (nothing is copied), so training or loading the model is
training or loading the segments.

>>> import torch
>>> from slimkit.models import build_model
>>> net = build_model("cnn", channels=[4, 8], hidden=8, input_size=8, num_classes=3)
>>> cut = Segmented(net, ["features.0"])
>>> x = torch.randn(2, 1, 8, 8)
>>> torch.allclose(cut.segments[1](cut.segments[0](x)), net(x))
True
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

from torch import fx, nn

from slimkit.errors import ConfigError, ModelError

__all__ = ["Segmented", "cut_points", "resolve_layers"]


class _Tracer(fx.Tracer):
    """The default tracer, with the chosen layers kept as single calls (their output is a node)."""

    def __init__(self, keep: Sequence[str]) -> None:
        super().__init__()
        self.keep = set(keep)

    def is_leaf_module(self, module: nn.Module, qualname: str) -> bool:
        return qualname in self.keep or super().is_leaf_module(module, qualname)


def _trace(model: nn.Module, keep: Sequence[str]) -> fx.Graph:
    try:
        return _Tracer(keep).trace(model)
    except Exception as exc:  # noqa: BLE001  (fx raises many types for code it cannot follow)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"cannot trace {type(model).__name__} with torch.fx to cut it into segments: {first[:200]}",
                         hint="early exits need a forward pass without data-dependent control flow; "
                              "exit after layers of a plain feed-forward model") from None


def _positions(graph: fx.Graph) -> dict[fx.Node, int]:
    return {node: i for i, node in enumerate(graph.nodes)}


def _is_cut(node: fx.Node, order: dict[fx.Node, int]) -> bool:
    """Whether every later node reads only this node or later ones (parameters fetched with
    ``get_attr`` are free to read anywhere)."""
    at = order[node]
    for later, position in order.items():
        if position <= at:
            continue
        for source in later.all_input_nodes:
            if order[source] < at and source.op != "get_attr":
                return False
    return True


def cut_points(model: nn.Module, layers: Sequence[str]) -> list[str]:
    """Those of ``layers`` (module paths) whose output is a cut point of ``model``, in forward order."""
    graph = _trace(model, layers)
    order = _positions(graph)
    found = {node.target: node for node in graph.nodes if node.op == "call_module" and node.target in set(layers)}
    return sorted((name for name, node in found.items() if _is_cut(node, order)), key=lambda n: order[found[n]])


def resolve_layers(model: nn.Module, patterns: Sequence[str]) -> list[str]:
    """Module paths for ``patterns`` (paths or globs), in forward order.

    A glob keeps the outermost matching modules that are cut points (so ``features.?`` picks
    whole blocks); an exact path must be a cut point itself, or this raises ConfigError.
    """
    if isinstance(patterns, str) or not patterns:
        raise ConfigError("early exit: 'exits' must be a non-empty list of layer paths or globs",
                          hint='e.g. exits: ["features.0", "features.1"]')
    names = [n for n, _ in model.named_modules() if n]
    wanted: dict[str, str] = {}
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise ConfigError(f"early exit: layer pattern '{pattern}' matches no module of {type(model).__name__}",
                              hint=f"module names look like: {', '.join(names[:12])}")
        for name in hits:
            wanted.setdefault(name, pattern)
    cuts = cut_points(model, list(wanted))
    for pattern in patterns:
        exact = pattern in wanted and wanted[pattern] == pattern and not any(c in "*?[" for c in pattern)
        if exact and pattern not in cuts:
            raise ConfigError(f"early exit: the output of '{pattern}' is not a cut point of {type(model).__name__} "
                              "(a later layer also reads something computed before it, e.g. a skip connection)",
                              hint="exit after a whole block or stage instead")
        if not any(wanted.get(c) == pattern for c in cuts):
            raise ConfigError(f"early exit: no layer matching '{pattern}' is a cut point of {type(model).__name__}",
                              hint="exit after whole blocks or stages (e.g. features.0), not inside one")
    outermost = [c for c in cuts if not any(c.startswith(o + ".") for o in cuts if o != c)]
    return outermost


def _copy_into(graph: fx.Graph, node: fx.Node, env: dict[fx.Node, fx.Node]) -> fx.Node:
    def look(source: fx.Node) -> fx.Node:
        if source not in env:
            if source.op != "get_attr":
                raise ModelError(f"segment cutting: node {source.name} is read across a cut")  # _is_cut rules it out
            env[source] = graph.node_copy(source)
        return env[source]

    return graph.node_copy(node, look)


class Segmented:
    """``model`` cut after each of ``layers`` (cut points, in forward order): ``segments[0]``
    takes the model's inputs, ``segments[k]`` the output of ``layers[k - 1]``, and the last one
    returns the model's outputs. A plain holder, not a module: the segments' parameters are the
    model's own."""

    def __init__(self, model: nn.Module, layers: Sequence[str]) -> None:
        graph = _trace(model, layers)
        order = _positions(graph)
        by_name = {node.target: node for node in graph.nodes if node.op == "call_module"}
        missing = [name for name in layers if name not in by_name]
        if missing:
            raise ModelError(f"layers {missing} are not called in {type(model).__name__}'s forward pass",
                             hint="choose layers the forward pass goes through")
        cuts = [by_name[name] for name in layers]
        if [order[c] for c in cuts] != sorted(order[c] for c in cuts) or len(set(layers)) != len(layers):
            raise ModelError(f"exit layers {list(layers)} are not distinct and in forward order")
        bad = [name for name, node in zip(layers, cuts) if not _is_cut(node, order)]
        if bad:
            raise ModelError(f"the outputs of {bad} are not cut points of {type(model).__name__}",
                             hint="exit after whole blocks or stages")
        self.layers = list(layers)
        self.segments: list[fx.GraphModule] = []
        nodes = list(graph.nodes)
        start: fx.Node | None = None
        for end in [*cuts, None]:
            self.segments.append(self._segment(model, nodes, start, end, order))
            start = end

    @staticmethod
    def _segment(model: nn.Module, nodes: list[fx.Node], start: fx.Node | None, end: fx.Node | None,
                 order: dict[fx.Node, int]) -> fx.GraphModule:
        graph = fx.Graph()
        env: dict[fx.Node, fx.Node] = {}
        first = 0 if start is None else order[start] + 1
        if start is not None:
            env[start] = graph.placeholder("x")
        for node in nodes[first:]:
            if node.op == "placeholder":
                if start is None:
                    env[node] = graph.node_copy(node)
                continue
            if node.op == "get_attr":
                continue  # copied where it is read
            if node.op == "output":
                graph.output(fx.node.map_arg(node.args[0], lambda n: env[n] if n in env else _copy_into(graph, n, env)))
                break
            env[node] = _copy_into(graph, node, env)
            if node is end:
                graph.output(env[node])
                break
        graph.lint()
        return fx.GraphModule(model, graph)

    def __len__(self) -> int:
        return len(self.segments)

    def run(self, *inputs: Any) -> list[Any]:
        """Every segment's output, in order, for one call with ``inputs``."""
        outs, value = [], self.segments[0](*inputs)
        outs.append(value)
        for segment in self.segments[1:]:
            value = segment(value)
            outs.append(value)
        return outs

