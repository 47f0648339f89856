"""The DARTS cell search space and its supernet; the discrete child is a ``dartsnet`` (:mod:`slimkit.models.dartsnet`).

A network is a stem (conv3x3-BN-ReLU and a 2x2 max pool, as the first block of ``searchnet``),
then stages, each of ``cells`` cells at ``widths[s]`` channels (a 1x1 conv-BN-ReLU widens
between stages) closed by a 2x2 max pool, then the zoo's classifier head (flatten, optional
hidden fc, logits ``out``). Cells work at half the input resolution and below, so a child costs
about what a ``searchnet`` student of the same depth does. A cell has an input node and
``nodes`` computed nodes; node j sums one operation on each of its inputs (the cell input and
earlier nodes); the cell's output is the mean of its computed nodes. The operations (stride 1,
channels kept) are those of the issue: ``conv3x3``, ``conv1x1``, ``sep_conv3x3`` (depthwise
3x3 then pointwise 1x1), ``max_pool3x3``, ``identity`` and ``zero``.

In the supernet every edge is a *mixed* operation, the softmax over that edge's architecture
weights (alpha, one row per edge, shared by the cells of a stage) of every operation's output
(Liu et al., DARTS, 2019). :func:`discretize` keeps, per node, its ``edges_per_node`` strongest
inputs (strength: the largest weight of a non-zero operation) with their strongest non-zero
operation: the genotype, which ``dartsnet`` builds as a plain network (a registered model, so
saved students reload).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slimkit.errors import ConfigError
from slimkit.models._blocks import classifier_head, init_weights
from slimkit.models.dartsnet import DARTS_FAMILY, OPS, check_stages, make_op, merge_nodes, stage_shell

__all__ = ["DARTS_FAMILY", "OPS", "SuperNet", "discretize", "edge_count"]


def edge_count(nodes: int) -> int:
    """Edges of a cell with ``nodes`` computed nodes (node j reads the input and nodes < j).

    >>> edge_count(3)
    6
    """
    return nodes * (nodes + 1) // 2


def _edges(nodes: int) -> list[tuple[int, int]]:
    """(target node, source node) per edge, in alpha row order; nodes count the input as 0."""
    return [(j, i) for j in range(1, nodes + 1) for i in range(j)]


class MixedOp(nn.Module):
    """Softmax-weighted sum of every operation on one edge."""

    def __init__(self, channels: int, ops: Sequence[str]) -> None:
        super().__init__()
        self.names = list(ops)
        self.ops = nn.ModuleList(make_op(name, channels) for name in ops)

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        return sum(w * op(x) for w, op, name in zip(weights, self.ops, self.names) if name != "zero")  # type: ignore[return-value]


class SearchCell(nn.Module):
    """A cell of the supernet: mixed operations on every edge."""

    def __init__(self, channels: int, nodes: int, ops: Sequence[str]) -> None:
        super().__init__()
        self.nodes = nodes
        self.edges = nn.ModuleList(MixedOp(channels, ops) for _ in range(edge_count(nodes)))

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        states, row = [x], 0
        for j in range(1, self.nodes + 1):
            total = 0
            for i in range(j):
                total = total + self.edges[row](states[i], weights[row])
                row += 1
            states.append(total)  # type: ignore[arg-type]
        return merge_nodes(states[1:])


class SuperNet(nn.Module):
    """The DARTS supernet (see the module docstring). ``alphas[s]`` holds stage s's architecture
    weights, one row per edge and one column per operation; ``arch_parameters()`` are the
    alphas, ``weight_parameters()`` everything else.

    >>> net = SuperNet(widths=[4, 8], cells=[1, 1], nodes=2, input_size=8, num_classes=3)
    >>> net(torch.zeros(2, 1, 8, 8)).shape, tuple(net.alphas[0].shape)
    (torch.Size([2, 3]), (3, 6))
    """

    def __init__(self, *, widths: Sequence[int], cells: Sequence[int], nodes: int = 3, ops: Sequence[str] = OPS,
                 in_channels: int = 1, num_classes: int = 10, input_size: int = 28, hidden: int = 16) -> None:
        super().__init__()
        check_stages(widths, cells, input_size)
        self.ops, self.nodes = list(ops), nodes

        def make_cells(s: int, width: int) -> nn.ModuleList:
            return nn.ModuleList(SearchCell(width, nodes, ops) for _ in range(cells[s]))

        self.stem, stages = stage_shell(in_channels, widths, make_cells)
        self.stages = nn.ModuleList(stages)
        size = input_size >> (len(widths) + 1)
        self.classifier = classifier_head(widths[-1] * size * size, (hidden,) if hidden else (), num_classes)
        self.alphas = nn.ParameterList(nn.Parameter(1e-3 * torch.randn(edge_count(nodes), len(ops))) for _ in widths)
        init_weights(self)

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.alphas)

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.alphas}
        return [p for p in self.parameters() if id(p) not in arch]

    def forward(self, x: Tensor) -> Tensor:
        h = self.stem(x)
        for stage, alpha in zip(self.stages, self.alphas):
            if hasattr(stage, "widen"):
                h = stage.widen(h)
            weights = F.softmax(alpha, dim=-1)
            for cell in stage.cells:
                h = cell(h, weights)
            h = stage.pool(h)
        return self.classifier(h)


def discretize(alphas: Sequence[Tensor], ops: Sequence[str], nodes: int, *, edges_per_node: int = 2,
               max_skips: int | None = None) -> list[list[list[Any]]]:
    """The genotype of ``alphas``: per stage, per node, ``[operation, source node]`` pairs.

    ``max_skips`` caps the ``identity`` edges per cell (P-DARTS's remedy for DARTS collapsing to
    parameter-free skips): the weakest extra ones take their edge's best other operation.

    >>> a = torch.zeros(3, 6); a[0, 2] = 5; a[2, 0] = 4   # node 1: sep from input; node 2: conv3x3 from node 1
    >>> discretize([a], OPS, 2, edges_per_node=1)
    [[[['sep_conv3x3', 0]], [['conv3x3', 1]]]]
    """
    live = [k for k, name in enumerate(ops) if name != "zero"]
    if not live:
        raise ConfigError("the DARTS operations need at least one besides 'zero'")
    genotype = []
    for alpha in alphas:
        weights = F.softmax(alpha.detach().float(), dim=-1)
        stage, row, skips = [], 0, []
        for j in range(1, nodes + 1):
            scored = []
            for i in range(j):
                best = max(live, key=lambda k: float(weights[row, k]))
                scored.append((float(weights[row, best]), i, ops[best], row))
                row += 1
            kept = sorted(sorted(scored, key=lambda t: (-t[0], t[1]))[:min(edges_per_node, j)], key=lambda t: t[1])
            stage.append([[name, i] for _, i, name, _ in kept])
            skips += [(w, j - 1, n, r) for n, (w, _, name, r) in enumerate(kept) if name == "identity"]
        others = [k for k in live if ops[k] != "identity"]
        if max_skips is not None and others:
            for _, node, position, r in sorted(skips)[:max(0, len(skips) - max_skips)]:  # weakest skips first
                stage[node][position][0] = ops[max(others, key=lambda k: float(weights[r, k]))]
        genotype.append(stage)
    return genotype


