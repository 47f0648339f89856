"""Tracing a model into Torch-Pruning's DependencyGraph, with errors that name the module.

Three things are added around ``tp.DependencyGraph().build_dependency``:

- the model is called through :mod:`slimkit.modelio` (one tensor, several positional inputs or a
  mapping of named ones; integer token IDs stay integers), and any output structure is traced;
- ``nn.MultiheadAttention`` is traced as one opaque node whose inputs are its query, key and
  value: Torch-Pruning would otherwise follow the attention's internal reshapes and transposes as
  if they were channel-preserving ops. Its own pruner then cuts the embedding dimension of the
  q/k/v and output projections together;
- ops that move the channel axis (a transpose before a token-mixing Linear, a concatenation along
  the sequence) are fixed up before the dependencies are built (:mod:`slimkit.pruning.axes`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from slimkit import modelio
from slimkit.errors import ModelError
from slimkit.evaluate.cost import reference_kernels

#: Pruners for the user's own layer types: ``{layer_class: torch_pruning BasePruningFunc}``.
CUSTOM_LAYERS: dict[type[nn.Module], Any] = {}


def describe(inputs: Any) -> str:
    """Shapes of example inputs, for messages: ``(1, 1, 8, 8)`` or ``image (1, 1, 8, 8), scale (1,)``."""
    found = modelio.tensors(inputs)
    if isinstance(inputs, torch.Tensor):
        return str(tuple(inputs.shape))
    return ", ".join(f"{name} {tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}" for name, t in found)


def probe(model: nn.Module, example_inputs: Any) -> set[str]:
    """Run the model once and return the names of the modules that ran; on failure raise a
    ModelError naming the innermost module that was running."""
    names = {m: n for n, m in model.named_modules()}
    stack: list[str] = []
    ran: set[str] = set()
    handles = []
    for module in model.modules():
        handles.append(module.register_forward_pre_hook(lambda m, _: stack.append(names.get(m, "?"))))
        handles.append(module.register_forward_hook(lambda m, *_: ran.add(stack.pop() if stack else "?")))
    try:
        with torch.no_grad(), reference_kernels():
            modelio.call(model, example_inputs)
    except Exception as exc:  # any failure in user code: say where it happened
        where = stack[-1] if stack else type(model).__name__
        raise ModelError(
            f"cannot run {type(model).__name__} on example inputs {describe(example_inputs)}: "
            f"the forward pass failed in module '{where or '(root)'}': {exc}",
            hint="pass example_inputs shaped like one real batch (or a loader); if that module cannot be traced, "
            f"leave it whole with exclude=['{where}']",
        ) from exc
    finally:
        for handle in handles:
            handle.remove()
    return ran


def output_tensors(outputs: Any) -> list[torch.Tensor]:
    """Every tensor in a model's outputs (tensor, tuple, list, mapping, ``ModelOutput``)."""
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    if isinstance(outputs, Mapping):
        return [t for value in outputs.values() for t in output_tensors(value)]
    if isinstance(outputs, (tuple, list)):
        return [t for value in outputs for t in output_tensors(value)]
    logits = getattr(outputs, "logits", None)
    return [logits] if isinstance(logits, torch.Tensor) else []


class _Opaque(torch.autograd.Function):
    """Identity on a module's (detached) output whose backward edges lead straight to the module's
    inputs: the tracer then sees the module as one node, whatever it does inside."""

    @staticmethod
    def forward(ctx: Any, output: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
        ctx.shapes = [i.shape for i in inputs]
        return output.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:  # never called: tracing only
        return (None, *(torch.zeros(s) for s in ctx.shapes))


def _opaque_attention(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> Any:
    inputs = [t for t in (*args[:3], *(kwargs.get(k) for k in ("query", "key", "value")))
              if isinstance(t, torch.Tensor) and t.requires_grad]
    if not isinstance(output, tuple) or not isinstance(output[0], torch.Tensor) or not inputs:
        return None
    return (_Opaque.apply(output[0].detach(), *inputs), *output[1:])


@contextlib.contextmanager
def opaque_attention(model: nn.Module) -> Iterator[None]:
    """Trace every ``nn.MultiheadAttention`` of ``model`` as one node (see the module docstring)."""
    handles = [m.register_forward_hook(_opaque_attention, with_kwargs=True)
               for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _graph_class() -> type:
    import torch_pruning as tp

    from slimkit.pruning.axes import fix_channel_axes

    class Graph(tp.DependencyGraph):
        """Torch-Pruning's graph, with ops that move the channel axis fixed before the
        dependencies are built."""

        def _build_dependency(self, module2node: dict[Any, Any]) -> None:
            fix_channel_axes(module2node)
            super()._build_dependency(module2node)

    return Graph


def build_graph(model: nn.Module, example_inputs: Any, *, checks: bool = True) -> tuple[Any, set[str] | None]:
    """Trace ``model`` into a Torch-Pruning DependencyGraph, with errors that name the module.

    Returns the graph and the names of the modules that ran on ``example_inputs`` (None with
    ``checks=False``, which skips the probing run: for copies of a model already checked).
    """
    bad = [n for n, m in model.named_modules() if parametrize.is_parametrized(m)]
    if bad:
        raise ModelError(
            f"layers {bad[:5]} carry parametrizations (unstructured pruning masks?), which structured pruning cannot cut",
            hint="call slimkit.pruning.make_permanent(model) first",
        )
    model.eval()
    ran = probe(model, example_inputs) if checks else None
    try:
        with torch.enable_grad(), reference_kernels(), opaque_attention(model):
            graph = _graph_class()().build_dependency(
                model, example_inputs=example_inputs, forward_fn=modelio.call, output_transform=output_tensors,
                verbose=False, customized_pruners=dict(CUSTOM_LAYERS),
            )
    except Exception as exc:  # the tracer's own failures are not actionable as they stand
        raise ModelError(
            f"Torch-Pruning could not trace {type(model).__name__}: {type(exc).__name__}: {exc}",
            hint="leave the layer it fails on whole with exclude=[...], or register a pruner with slimkit.pruning.register_layer",
        ) from exc
    return graph, ran
