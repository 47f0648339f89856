"""``dartsnet``: the discrete network a DARTS search yields (``slimkit.search.darts`` finds its genotype).

A network is a stem (conv3x3-BN-ReLU and a 2x2 max pool, as the first block of ``searchnet``),
then stages, each of ``cells`` cells at ``widths[s]`` channels (a 1x1 conv-BN-ReLU widens
between stages) closed by a 2x2 max pool, then the zoo's classifier head (flatten, optional
hidden fc, logits ``out``). A cell has an input node and computed nodes; node j sums one
operation on each of its chosen inputs (the cell input and earlier nodes); the cell's output is
the mean of its computed nodes. The operations (stride 1, channels kept) are ``conv3x3``,
``conv1x1``, ``sep_conv3x3`` (depthwise 3x3 then pointwise 1x1), ``max_pool3x3``, ``identity``
and ``zero``. It lives in the zoo so a saved child reloads in a fresh process.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from slimkit.errors import ConfigError
from slimkit.models._blocks import ZooNet, classifier_head, common, conv_bn_relu, init_weights, int_tuple, scale
from slimkit.models._registry import MODELS
from slimkit.models.searchnet import separable_block

__all__ = ["DARTS_FAMILY", "OPS", "DartsNet", "dartsnet", "make_op"]

#: The model family (a ``slimkit.models.MODELS`` name) of DARTS children.
DARTS_FAMILY = "dartsnet"


class Zero(nn.Module):
    """The ``zero`` operation: no connection (its output is zeros)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mul(0.0)


def make_op(name: str, channels: int) -> nn.Module:
    if name == "conv3x3":
        return conv_bn_relu(channels, channels, kernel_size=3)
    if name == "conv1x1":
        return conv_bn_relu(channels, channels, kernel_size=1)
    if name == "sep_conv3x3":
        return separable_block(channels, channels, 3, pool=False)
    if name == "max_pool3x3":
        return nn.MaxPool2d(3, stride=1, padding=1)
    if name == "identity":
        return nn.Identity()
    if name == "zero":
        return Zero()
    raise ConfigError(f"unknown DARTS operation '{name}'", hint=f"operations: {', '.join(OPS)}")


#: Every operation of the cell search space.
OPS = ("conv3x3", "conv1x1", "sep_conv3x3", "max_pool3x3", "identity", "zero")


def merge_nodes(nodes: list[Tensor]) -> Tensor:
    """A cell's output: the mean of its computed nodes (the node itself when there is one)."""
    return nodes[0] if len(nodes) == 1 else torch.stack(nodes).mean(dim=0)


def stage_shell(in_channels: int, widths: Sequence[int], make_cells: Any) -> tuple[nn.Module, list[nn.Module]]:
    stem = conv_bn_relu(in_channels, widths[0], kernel_size=3, pool=True)
    stages = []
    for s, width in enumerate(widths):
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if s > 0 and widths[s - 1] != width:
            layers["widen"] = conv_bn_relu(widths[s - 1], width, kernel_size=1)
        layers["cells"] = make_cells(s, width)
        layers["pool"] = nn.MaxPool2d(2)
        stages.append(nn.Sequential(layers))
    return stem, stages


def check_stages(widths: Sequence[int], cells: Sequence[int], input_size: int) -> None:
    widths, cells = int_tuple(DARTS_FAMILY, "widths", widths), int_tuple(DARTS_FAMILY, "cells", cells)
    if len(cells) != len(widths):
        raise ConfigError(f"model '{DARTS_FAMILY}': 'cells' has {len(cells)} entries for {len(widths)} stages",
                          hint="give one cell count per stage")
    if input_size >> (len(widths) + 1) < 1:
        raise ConfigError(f"model '{DARTS_FAMILY}': input_size {input_size} is too small for {len(widths)} stages "
                          "(and the stem's pool)", hint=f"use at most {input_size.bit_length() - 2} stages")


class ChildCell(nn.Module):
    """A discrete cell: node j sums its chosen operations on its chosen inputs."""

    def __init__(self, channels: int, genotype: Sequence[Sequence[Sequence[Any]]]) -> None:
        super().__init__()
        self.sources = [[int(src) for _, src in node] for node in genotype]
        self.ops = nn.ModuleList(nn.ModuleList(make_op(str(name), channels) for name, _ in node) for node in genotype)

    def forward(self, x: Tensor) -> Tensor:
        states = [x]
        for sources, ops in zip(self.sources, self.ops):
            total = 0
            for src, op in zip(sources, ops):
                total = total + op(states[src])
            states.append(total)  # type: ignore[arg-type]
        return merge_nodes(states[1:])


class DartsNet(ZooNet):
    """A ``dartsnet``: ``features`` (``0``: the stem, then one entry per stage of discrete cells), ``classifier``."""


def _check_genotype(genotype: Any, stages: int) -> list[list[list[Any]]]:
    ok = isinstance(genotype, (list, tuple)) and len(genotype) == stages
    if ok:
        for stage in genotype:
            for j, node in enumerate(stage, start=1):
                ok = ok and isinstance(node, (list, tuple)) and len(node) > 0 and all(
                    isinstance(e, (list, tuple)) and len(e) == 2 and e[0] in OPS and isinstance(e[1], int)
                    and 0 <= e[1] < j for e in node)
    if not ok:
        raise ConfigError(f"model '{DARTS_FAMILY}': 'genotype' must hold, per stage, per node, [operation, source] "
                          f"pairs (operations {list(OPS)}, source an earlier node), got {genotype!r}"[:400],
                          hint="use the genotype a DARTS search wrote (darts.json)")
    return [[[list(e) for e in node] for node in stage] for stage in genotype]


@MODELS.register(DARTS_FAMILY, doc="a discrete DARTS network: stem, stages of searched cells, fc head",
                 input_sizes=(28, 8), params=5_666)
def dartsnet(*, in_channels: int = 1, num_classes: int = 10, input_size: int = 28, widths: Sequence[int] = (8, 16),
             cells: Sequence[int] = (1, 1), genotype: Any = (((("conv3x3", 0),),), ((("conv3x3", 0),),)),
             hidden: int = 16, width: float = 1.0) -> nn.Module:
    """Build the child a DARTS search found (``genotype``: per stage, per node, [op, source]);
    ``width`` multiplies every stage width and ``hidden``.

    >>> net = dartsnet(input_size=8, genotype=[[[["sep_conv3x3", 0]], [["identity", 0], ["conv3x3", 1]]],
    ...                                        [[["conv1x1", 0]]]])
    >>> net(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """
    w = common(DARTS_FAMILY, in_channels, num_classes, input_size, width)
    check_stages(widths, cells, input_size)
    widths = [scale(c, w) for c in widths]
    hidden = scale(hidden, w) if isinstance(hidden, int) and not isinstance(hidden, bool) and hidden > 0 else hidden
    cells_genotype = _check_genotype(genotype, len(widths))
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 0:
        raise ConfigError(f"model '{DARTS_FAMILY}': knob 'hidden' must be an int >= 0, got {hidden!r}")

    def make_cells(s: int, width: int) -> nn.Sequential:
        return nn.Sequential(*(ChildCell(width, cells_genotype[s]) for _ in range(cells[s])))

    stem, stages = stage_shell(in_channels, widths, make_cells)
    size = input_size >> (len(widths) + 1)
    net = DartsNet(nn.Sequential(stem, *stages), classifier_head(widths[-1] * size * size, (hidden,) if hidden else (), num_classes))
    init_weights(net)
    return net
