"""Where the channels are: fix Torch-Pruning's graph where an op moves the channel axis.

Torch-Pruning follows channels from layer to layer through the autograd graph and treats every
op in between (add, GELU, transpose, ...) as if it kept the channels on the channel axis. Two
common patterns break that:

- **a transpose that moves the channels to an axis the next layer does not read as channels**:
  an MLP-Mixer normalizes tokens ``(N, T, D)`` over ``D``, transposes to ``(N, D, T)`` and applies
  a token-mixing ``Linear`` over ``T``. Followed blindly, ``D`` would be coupled to the Linear's
  ``T`` inputs (and its ``T`` outputs to ``D`` after the transpose back). Such an edge is cut:
  the channels on the far side are then a batch-like axis, which any later layer accepts at any
  size, and the layer whose outputs land on a non-channel axis is left whole (its group ends
  there, as a model output's does).
- **a concatenation along a non-channel axis** (a CLS token prepended to the sequence): its index
  mapping is turned off, so its inputs' channels are coupled one to one, as they are.

Which axis holds the channels is read from the layers around the op: convolutions and
BatchNorm-like layers put them on axis 1, Linear, LayerNorm, Embedding and attention on the
last axis. Where that is unknown (custom layers, parameters, chains of transposes) the graph is
left as Torch-Pruning built it, and the trial run of every group (see ``graph.trial_groups``)
catches what it gets wrong.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from torch import nn

FRONT = (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm,
         nn.PReLU)
BACK = (nn.Linear, nn.LayerNorm, nn.Embedding, nn.MultiheadAttention, nn.LSTM)
_MOVES = ("TransposeBackward", "PermuteBackward")


def _signed(value: int) -> int:
    """Autograd saves negative dims as unsigned 64-bit integers."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _rank(node: Any) -> int | None:
    try:
        return len(node.grad_fn._input_metadata[0].shape)
    except (AttributeError, IndexError, TypeError):
        return None


def _op_name(node: Any) -> str:
    name = getattr(node.grad_fn, "name", None)
    return name() if callable(name) else ""


def _is_layer(node: Any) -> bool:
    return isinstance(node.module, nn.Module) and not type(node.module).__module__.startswith("torch_pruning")


def _side(node: Any) -> str | None:
    """"front" (channels on axis 1) or "back" (last axis) for a layer node; None if unknown."""
    if isinstance(node.module, FRONT):
        return "front"
    if isinstance(node.module, BACK):
        return "back"
    return None


def _neighbours_sides(start: Any, direction: str) -> set[str | None]:
    """Sides of the nearest layers from ``start`` going ``direction`` ("inputs" or "outputs")
    through ops; an op that moves axes again, or reaching the model output, adds None (unknown)."""
    sides: set[str | None] = set()
    seen = {id(start)}
    queue = deque(getattr(start, direction))
    while queue:
        node = queue.popleft()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if _is_layer(node):
            sides.add(_side(node))
            continue
        if any(_op_name(node).startswith(m) for m in _MOVES) or not getattr(node, direction):
            sides.add(None)
            continue
        queue.extend(getattr(node, direction))
    return sides


def _axis(side: str, rank: int) -> int:
    return 1 if side == "front" else rank - 1


def _moved_axis(node: Any, axis: int, rank: int) -> int | None:
    """Where a transpose or permute puts input axis ``axis``."""
    fn, name = node.grad_fn, _op_name(node)
    if name.startswith("TransposeBackward"):
        dims = [_signed(fn._saved_dim0) % rank, _signed(fn._saved_dim1) % rank]
        return dims[1] if axis == dims[0] else dims[0] if axis == dims[1] else axis
    if name.startswith("PermuteBackward"):
        order = [_signed(d) % rank for d in fn._saved_dims]
        return order.index(axis) if axis in order else None
    return None


def _one_side(sides: set[str | None]) -> str | None:
    return next(iter(sides)) if len(sides) == 1 else None


def _fix_move(node: Any) -> None:
    rank = _rank(node)
    before = _one_side(_neighbours_sides(node, "inputs"))
    after = _neighbours_sides(node, "outputs")
    if rank is None or before is None or None in after:
        return
    moved = _moved_axis(node, _axis(before, rank), rank)
    if moved is None or all(moved == _axis(side, rank) for side in after):  # type: ignore[arg-type]
        return
    for source in list(node.inputs):  # the channels leave the channel axis here: no coupling
        source.outputs.remove(node)
        node.inputs.remove(source)
        source.slimkit_moved = True


def _fix_concat(node: Any) -> None:
    rank = _rank(node)
    side = _one_side(_neighbours_sides(node, "inputs"))
    dim = getattr(node.grad_fn, "_saved_dim", None)
    if rank is None or side is None or dim is None:
        return
    if _signed(dim) % rank != _axis(side, rank):
        node.enable_index_mapping = False


def fix_channel_axes(module2node: dict[Any, Any]) -> None:
    """Cut the edges through axis-moving transposes and turn off the index mapping of
    concatenations along a non-channel axis (see the module docstring), in place."""
    for node in list(module2node.values()):
        name = _op_name(node)
        if any(name.startswith(m) for m in _MOVES):
            _fix_move(node)
        elif name.startswith("CatBackward"):
            _fix_concat(node)
