"""Static cost of a model: parameters, nonzero parameters, bytes on disk and MACs.

- Parameters are counted once even when shared (tied weights). Pruned weights count as they
  act: for ``torch.nn.utils.prune`` (``weight_orig`` * ``weight_mask``) and
  ``torch.nn.utils.parametrize`` the *effective* tensor is what ``count_nonzero`` inspects.
  Eager-mode quantized modules (``torch.ao.nn.quantized``), which keep their weights in packed
  form instead of parameters, are counted through their ``weight()``/``bias()`` accessors.
- Bytes are the size of the artifact actually written, never params x 4.
- MACs come from ``torch.utils.flop_counter.FlopCounterMode`` (which counts convolution
  FLOPs with the ``groups`` argument, so depthwise convs are right): MACs = FLOPs / 2 for
  conv, linear and matmul. Eager quantized conv/linear kernels are invisible to the counter,
  so their MACs are added from the output shape by forward hooks. Element-wise ops, pooling
  and normalisation are not counted, as is usual for MACs. Attention is counted through its
  plain PyTorch path (:func:`reference_kernels`): the fused fast path of ``nn.TransformerEncoder``
  and the CPU flash-attention kernel are invisible to the counter.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.utils.flop_counter import FlopCounterMode

from slimkit.errors import ModelError
from slimkit.evaluate.predict import eval_mode
from slimkit.modelio import call, take

__all__ = ["Saver", "artifact_bytes", "cost", "count_macs", "count_nonzero", "count_params", "reference_kernels"]

#: ``saver(model, path)`` writes the model's artifact at ``path`` (a file or a directory).
Saver = Callable[[nn.Module, Path], object]


def _packed_weights(module: nn.Module) -> list[Tensor]:
    """Weights of eager quantized modules, which expose them only through methods."""
    out = []
    for name in ("weight", "bias"):
        accessor = getattr(module, name, None)
        if callable(accessor) and not isinstance(accessor, nn.Module):
            try:
                tensor = accessor()
            except (RuntimeError, TypeError, AttributeError):
                continue
            if isinstance(tensor, Tensor):
                out.append(tensor.dequantize() if tensor.is_quantized else tensor)
    return out


def _effective_tensors(model: nn.Module) -> Iterator[Tensor]:
    """Every weight tensor once, as the forward pass sees it (masks, parametrizations)."""
    seen: set[int] = set()
    for module in model.modules():
        if parametrize.is_parametrized(module):
            for name, plist in module.parametrizations.items():
                seen.update(id(p) for p in plist.parameters())
                yield getattr(module, name).detach()
        for name, param in module._parameters.items():
            if param is None or id(param) in seen:
                continue
            seen.add(id(param))
            # torch.nn.utils.prune keeps ``weight_orig`` and multiplies by ``weight_mask``
            mask = None
            if name.endswith("_orig"):
                mask = getattr(module, name[: -len("_orig")] + "_mask", None)
            yield (param * mask).detach() if isinstance(mask, Tensor) else param.detach()
        if not module._parameters and type(module).__module__.startswith("torch.ao.nn.quantized"):
            yield from _packed_weights(module)


def count_params(model: nn.Module) -> int:
    """Number of weights (shared tensors once, pruning masks not included).

    >>> count_params(nn.Linear(3, 2))
    8
    """
    with torch.no_grad():
        return sum(t.numel() for t in _effective_tensors(model))


def count_nonzero(model: nn.Module) -> int:
    """Number of nonzero weights as the forward pass sees them (pruning masks applied).

    >>> m = nn.Linear(3, 2)
    >>> with torch.no_grad():
    ...     _ = m.weight.zero_(), m.bias.fill_(1.0)
    >>> count_nonzero(m)
    2
    """
    with torch.no_grad():
        return sum(int(torch.count_nonzero(t)) for t in _effective_tensors(model))


@contextlib.contextmanager
def reference_kernels() -> Iterator[None]:
    """Run attention through its plain PyTorch path (no fused ``nn.MultiheadAttention`` fast path,
    the math SDPA backend), so every module's hooks fire and every matmul is visible to tracing
    and to the MAC counter. Results are the same; only speed differs."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    was = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel([SDPBackend.MATH]):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(was)


def _quantized_macs_hook(counter: list[int]) -> Callable:
    def hook(module: nn.Module, inputs: tuple, output: object) -> None:
        if not isinstance(output, Tensor):
            return
        if hasattr(module, "in_features"):
            counter[0] += output.numel() * int(module.in_features)
        elif hasattr(module, "in_channels") and hasattr(module, "kernel_size"):
            kernel = math.prod(module.kernel_size)
            counter[0] += output.numel() * int(module.in_channels) // int(module.groups) * kernel

    return hook


def count_macs(model: nn.Module, example_input: Any) -> int:
    """Multiply-accumulates of one forward pass on ``example_input`` (model inputs as
    :mod:`slimkit.modelio` reads them; pass a batch of one for per-sample MACs), in eval mode
    without gradients.

    >>> count_macs(nn.Linear(3, 2), torch.zeros(1, 3))
    6
    """
    extra = [0]
    handles = [
        m.register_forward_hook(_quantized_macs_hook(extra))
        for m in model.modules()
        if type(m).__module__.startswith("torch.ao.nn.quantized") and _packed_weights(m)
    ]
    try:
        with eval_mode(model), torch.no_grad(), reference_kernels(), FlopCounterMode(display=False) as counter:
            call(model, example_input)
    finally:
        for handle in handles:
            handle.remove()
    return int(counter.get_total_flops()) // 2 + extra[0]


def _tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _save_safetensors(model: nn.Module, path: Path) -> None:
    from safetensors.torch import save_model

    # save_model drops duplicate (tied) tensors, which save_file would refuse.
    save_model(model, str(path), force_contiguous=True)


def artifact_bytes(model: nn.Module, *, saver: Saver | None = None) -> int:
    """Bytes of the model's saved artifact, written to a temporary directory and measured.

    The default writes the state dict as safetensors; pass ``saver(model, path)`` to measure
    another format (e.g. the full slimkit serializer, or a sparse or int8 encoding). If the
    saver writes a directory at ``path`` (or files beside it), every file is counted.

    >>> artifact_bytes(nn.Linear(3, 2)) > 8 * 4
    True
    """
    saver = saver or _save_safetensors
    with tempfile.TemporaryDirectory(prefix="slimkit-bytes-") as tmp:
        path = Path(tmp) / "model.safetensors"
        try:
            saver(model, path)
        except Exception as exc:  # a saver may fail for any reason; say which model and how
            raise ModelError(
                f"could not save {type(model).__name__} to measure its size: {exc}",
                hint="pass saver=... that can write this model (e.g. slimkit's serializer)",
            ) from exc
        size = _tree_bytes(Path(tmp))
        if size == 0 or not any(Path(tmp).iterdir()):
            raise ModelError(
                f"the saver wrote nothing under {os.fspath(tmp)}",
                hint="a saver must write the artifact at the path it is given",
            )
    return size


def cost(model: nn.Module, example_input: Any, *, saver: Saver | None = None) -> dict:
    """Static cost in one dict: ``params``, ``nonzero_params``, ``sparsity`` (share of zero
    weights), ``bytes`` (saved artifact) and ``macs`` (per sample, from ``example_input[:1]``).

    >>> c = cost(nn.Linear(3, 2), torch.zeros(4, 3))
    >>> c["params"], c["macs"]
    (8, 6)
    """
    params = count_params(model)
    nonzero = count_nonzero(model)
    return {
        "params": params,
        "nonzero_params": nonzero,
        "sparsity": 1.0 - nonzero / params if params else 0.0,
        "bytes": artifact_bytes(model, saver=saver),
        "macs": count_macs(model, take(example_input, 1)),
    }
