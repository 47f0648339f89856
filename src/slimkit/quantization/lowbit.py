"""Low-bit weights (2..8 bits), per output channel or in groups, with 8-bit activations.

Accuracy: each selected Conv/Linear computes with fake-quantized weights (a parametrization
with a straight-through gradient, so the same model can be fine-tuned), and optionally an
8-bit fake-quantized input. Weights are rounded to nearest, or by GPTQ (second-order rounding
with error compensation, clipping search and bias correction; :mod:`slimkit.quantization.gptq`)
when calibration data is given (``rounding="auto"``). Size: :func:`save_packed` writes the integer codes bit-packed
(``ceil(n * bits / 8)`` bytes per layer) plus float32 scales (and uint8 zero points when
asymmetric), so the file on disk is the real low-bit size. No int4 kernels run in PyTorch: a
low-bit model's speed is its float model's, unless ``backend="onnxruntime"`` (4-bit weight-only
Linear layers on ONNX Runtime's int4 ``MatMulNBits`` kernel, :mod:`slimkit.quantization.int4`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.nn.utils import parametrize

from slimkit.errors import CheckpointError
from slimkit.export.serialize import CHANGES, record_change, record_report
from slimkit.fileio import atomic_path
from slimkit.quantization import _pt2e
from slimkit.quantization.calibrate import calibration_batches, report_float_layers
from slimkit.quantization.config import LowBit, check_bits
from slimkit.quantization.observers import build_observer, qparams
from slimkit.quantization.ptq import float_copy

__all__ = [
    "ActivationFakeQuant", "LayerPlan", "LowBitWeight", "apply_plan", "dequantize_weight", "load_packed",
    "pack_codes", "packed_bytes", "quantize_weight", "save_packed", "unpack_codes",
]
LOWBIT_TYPES = (nn.Conv1d, nn.Conv2d, nn.Linear)


@dataclass(frozen=True)
class LayerPlan:
    """How one layer's weight is stored: ``bits``, ``group_size`` (None = per output channel)."""

    bits: int
    group_size: int | None = None
    symmetric: bool = True


def _grouped(w: Tensor, group_size: int | None) -> tuple[Tensor, int]:
    """``w`` as (out, groups, group) with NaN padding of the last group; and the row length."""
    rows = w.reshape(w.shape[0], -1)
    n = rows.shape[1]
    size = n if group_size is None else min(group_size, n)
    pad = (-n) % size
    if pad:
        rows = torch.cat([rows, rows.new_full((rows.shape[0], pad), float("nan"))], dim=1)
    return rows.reshape(rows.shape[0], -1, size), n


def quantize_weight(w: Tensor, plan: LayerPlan, scale: Tensor | None = None,
                    zero: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Integer codes in ``[0, 2**bits)`` (shape of ``w``), scales and zero points per group:
    the min/max grid of each group, or the given ``scale``/``zero`` (a grid chosen by GPTQ).

    >>> codes, scale, zero = quantize_weight(torch.tensor([[-1.0, 0.5, 1.0]]), LayerPlan(bits=2))
    >>> codes.tolist(), scale.tolist(), zero.tolist()
    ([[1, 2, 3]], [[1.0]], [[2]])
    """
    check_bits(plan.bits)
    g, n = _grouped(w.detach().float(), plan.group_size)
    qmax = 2**plan.bits - 1
    if scale is not None and zero is not None:
        scale, zero = scale.float(), zero.round().to(torch.int64)
    elif plan.symmetric:  # signed grid [-2^(b-1), 2^(b-1)-1], stored shifted to unsigned codes
        hi = torch.nan_to_num(g, nan=float("-inf")).amax(dim=2)
        lo = torch.nan_to_num(g, nan=float("inf")).amin(dim=2)
        half = 2 ** (plan.bits - 1)
        scale = torch.clamp(torch.maximum(-lo, hi) / max(half - 1, 1), min=2.0**-24)
        zero = torch.full_like(scale, half, dtype=torch.int64)
    else:
        hi = torch.nan_to_num(g, nan=float("-inf")).amax(dim=2)
        lo = torch.nan_to_num(g, nan=float("inf")).amin(dim=2)
        lo, hi = torch.clamp(lo, max=0.0), torch.clamp(hi, min=0.0)
        scale = torch.clamp((hi - lo) / qmax, min=2.0**-24)
        zero = torch.clamp(torch.round(-lo / scale), 0, qmax).to(torch.int64)
    codes = torch.clamp(torch.round(g / scale[..., None]) + zero[..., None], 0, qmax)
    codes = torch.nan_to_num(codes, nan=0.0).to(torch.uint8).reshape(w.shape[0], -1)[:, :n]
    return codes.reshape(w.shape), scale, zero.to(torch.uint8)


def dequantize_weight(codes: Tensor, scale: Tensor, zero: Tensor, plan: LayerPlan) -> Tensor:
    """Float weights from codes: ``(code - zero) * scale`` per group (shape of ``codes``)."""
    g, n = _grouped(codes.float(), plan.group_size)
    w = (g - zero.float()[..., None]) * scale[..., None]
    return w.reshape(codes.shape[0], -1)[:, :n].reshape(codes.shape)


class _STE(torch.autograd.Function):
    """Forward: the fake-quantized weight; backward: the gradient passes straight through."""

    @staticmethod
    def forward(ctx: Any, w: Tensor, plan: LayerPlan, scale: Tensor | None, zero: Tensor | None) -> Tensor:
        return dequantize_weight(*quantize_weight(w, plan, scale, zero), plan).to(w.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        return grad, None, None, None


class LowBitWeight(nn.Module):
    """Parametrization: the layer sees its weight rounded to the low-bit grid: each group's
    min/max grid, or a fixed grid (``scale``/``zero`` buffers, shape ``(out, groups)``) that a
    rounding method such as GPTQ chose."""

    def __init__(self, plan: LayerPlan, grid: tuple[Tensor, Tensor] | None = None) -> None:
        super().__init__()
        self.plan = plan
        if grid is not None:
            self.register_buffer("scale", grid[0].detach().float().clone())
            self.register_buffer("zero", grid[1].detach().float().clone())
        else:
            self.scale = self.zero = None

    def forward(self, w: Tensor) -> Tensor:
        return _STE.apply(w, self.plan, self.scale, self.zero)

    def extra_repr(self) -> str:
        return f"bits={self.plan.bits}, group_size={self.plan.group_size}, symmetric={self.plan.symmetric}"


class ActivationFakeQuant(nn.Module):
    """8-bit affine fake quantization of a layer's input with a calibrated scale/zero point."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("zero_point", torch.tensor(0, dtype=torch.int32))

    def forward(self, x: Tensor) -> Tensor:
        return torch.fake_quantize_per_tensor_affine(x, self.scale, self.zero_point, 0, 255)


def _pre_hook(module: nn.Module, args: tuple) -> tuple:
    return (module.input_quant(args[0]), *args[1:])


def apply_plan(model: nn.Module, plan: dict[str, LayerPlan], *, activations: bool = False,
               grids: dict[str, tuple[Tensor, Tensor]] | None = None) -> nn.Module:
    """Parametrize each planned layer's weight (in place), on its fixed grid where ``grids`` has
    one; with ``activations``, add an ``input_quant`` module applied before the layer (calibrate
    it with :func:`calibrate_inputs`)."""
    for name, layer_plan in plan.items():
        layer = model.get_submodule(name)
        grid = (grids or {}).get(name)
        parametrize.register_parametrization(layer, "weight", LowBitWeight(layer_plan, grid))
        if activations:
            layer.input_quant = ActivationFakeQuant()
            layer.register_forward_pre_hook(_pre_hook)
    return model


def calibrate_inputs(model: nn.Module, names: list[str], batches: list[Tensor], observer: str) -> None:
    """Set each layer's ``input_quant`` from an observer of its float input over the batches."""
    observers = {n: build_observer(observer) for n in names}
    layers = {n: model.get_submodule(n) for n in names}
    quants = {n: layer.input_quant for n, layer in layers.items()}
    hooks = [layers[n].register_forward_pre_hook(lambda m, a, o=observers[n]: (o(a[0]), *a[1:])) for n in names]
    try:
        for layer in layers.values():
            layer.input_quant = nn.Identity()  # observe the float activations
        with torch.no_grad():
            model.eval()
            for x in batches:
                model(x)
    finally:
        for h in hooks:
            h.remove()
        for n, layer in layers.items():
            layer.input_quant = quants[n]
    for n in names:
        scale, zero = qparams(*observers[n].range())
        quants[n].scale.fill_(scale)
        quants[n].zero_point.fill_(zero)


def pack_codes(codes: Tensor, bits: int) -> Tensor:
    """Bit-pack unsigned ``bits``-bit codes into ``ceil(n * bits / 8)`` bytes (little-endian bits).

    >>> pack_codes(torch.tensor([1, 2, 3, 0], dtype=torch.uint8), 2).tolist()
    [57]
    """
    flat = codes.reshape(-1).numpy().astype(np.uint8)
    bitplanes = np.unpackbits(flat[:, None], axis=1, bitorder="little")[:, :bits]
    return torch.from_numpy(np.packbits(bitplanes.reshape(-1), bitorder="little"))


def unpack_codes(packed: Tensor, bits: int, count: int) -> Tensor:
    """The inverse of :func:`pack_codes`: ``count`` codes of ``bits`` bits.

    >>> unpack_codes(torch.tensor([57], dtype=torch.uint8), 2, 4).tolist()
    [1, 2, 3, 0]
    """
    stream = np.unpackbits(packed.numpy().astype(np.uint8), bitorder="little")[: count * bits]
    planes = np.zeros((count, 8), dtype=np.uint8)
    planes[:, :bits] = stream.reshape(count, bits)
    return torch.from_numpy(np.packbits(planes, axis=1, bitorder="little").reshape(-1))


def packed_bytes(numel: int, groups: int, plan: LayerPlan) -> int:
    """Bytes one layer's weight takes packed: codes + float32 scales (+ uint8 zero points).

    >>> packed_bytes(1000, 10, LayerPlan(bits=4))
    540
    """
    return math.ceil(numel * plan.bits / 8) + 4 * groups + (0 if plan.symmetric else groups)


def _plans(model: nn.Module) -> dict[str, LayerPlan]:
    return {name: m.parametrizations.weight[0].plan for name, m in model.named_modules()
            if parametrize.is_parametrized(m, "weight") and isinstance(m.parametrizations.weight[0], LowBitWeight)}


def save_packed(model: nn.Module, path: str | Path) -> Path:
    """Write the model with low-bit weights bit-packed (safetensors; metadata says how)."""
    plans = _plans(model)
    tensors: dict[str, Tensor] = {}
    layers = {}
    for name, plan in plans.items():
        layer = model.get_submodule(name)
        fixed = layer.parametrizations.weight[0]
        codes, scale, zero = quantize_weight(layer.parametrizations.weight.original, plan, fixed.scale, fixed.zero)
        tensors[f"{name}.weight.codes"] = pack_codes(codes, plan.bits)
        tensors[f"{name}.weight.scale"] = scale.float().contiguous()
        if not plan.symmetric:
            tensors[f"{name}.weight.zero_point"] = zero.contiguous()
        layers[name] = {**asdict(plan), "shape": list(codes.shape)}
    for key, value in model.state_dict().items():
        if ".parametrizations.weight." not in key:
            tensors[key] = value.detach().contiguous().clone()
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "slimkit-lowbit", "layers": json.dumps(layers)})
    return Path(path)


def load_packed(path: str | Path, model: nn.Module) -> nn.Module:
    """Load a :func:`save_packed` file into ``model`` (the float architecture, BN folded as when
    saved): low-bit layers get plain weights equal to the dequantized codes, and 8-bit input
    quantizers where the file has them, so the result computes exactly what the saved model did."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
    if meta.get("format") != "slimkit-lowbit":
        raise CheckpointError(f"{path} is not a slimkit low-bit file", hint="write it with save_packed")
    tensors = load_file(str(path))
    state = {}
    for name, info in json.loads(meta["layers"]).items():
        plan = LayerPlan(info["bits"], info["group_size"], info["symmetric"])
        count = math.prod(info["shape"])
        codes = unpack_codes(tensors.pop(f"{name}.weight.codes"), plan.bits, count).reshape(info["shape"])
        scale = tensors.pop(f"{name}.weight.scale")
        zero = tensors.pop(f"{name}.weight.zero_point", torch.full_like(scale, 2 ** (plan.bits - 1), dtype=torch.uint8))
        for key in [k for k in tensors if k.startswith(f"{name}.parametrizations.")]:
            del tensors[key]  # a fixed grid's buffers: the scales above are that grid
        state[f"{name}.weight"] = dequantize_weight(codes, scale, zero, plan)
    for key, value in tensors.items():
        state[key.replace(".parametrizations.weight.original", ".weight")] = value
        if key.endswith(".input_quant.scale"):
            layer = model.get_submodule(key[: -len(".input_quant.scale")])
            if not hasattr(layer, "input_quant"):
                layer.input_quant = ActivationFakeQuant()
                layer.register_forward_pre_hook(_pre_hook)
    _, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise CheckpointError(f"{path} does not fit {type(model).__name__}: unexpected {unexpected[:5]}")
    return model


def fake_lowbit(model: nn.Module, config: LowBit, calib: Any, example: Tensor | None) -> tuple[nn.Module, list[Any]]:
    """Fake-quantized low-bit weights (+ 8-bit inputs) on a BN-folded copy of ``model``, and the
    calibration batches used (``quantize`` with a LowBit config: :func:`slimkit.quantization.int4.lowbit`)."""
    _pt2e.check_quantizable(model, config)
    base = float_copy(model)
    wanted = _pt2e.weighted_layers(base, config)
    names = [n for n in wanted if isinstance(base.get_submodule(n), LOWBIT_TYPES)]
    report_float_layers(f"low-bit {config.bits}", {n: type(base.get_submodule(n)).__name__ for n in wanted
                                                   if n not in names}, strict=config.strict)
    plan = {n: LayerPlan(config.bits, config.group_size, config.symmetric) for n in names}
    activations = config.activation_bits is not None
    rounding = config.rounding if config.rounding != "auto" else ("gptq" if calib is not None else "nearest")
    needs_data = activations or rounding == "gptq" or (config.backend == "onnxruntime" and calib is not None)
    batches = calibration_batches(calib, config.calibration_batches, model=model, example=example) if needs_data else []
    grids = None
    if rounding == "gptq":
        from slimkit.quantization.gptq import gptq_round

        gptq_names = [n for n in names if isinstance(base.get_submodule(n), (nn.Conv2d, nn.Linear))]
        grids = gptq_round(base, gptq_names, batches, plan, bias_correction=config.bias_correction)
    apply_plan(base, plan, activations=activations, grids=grids)
    if activations:
        calibrate_inputs(base, names, batches, config.observer)
    layers = {n: {**asdict(p), **({"grid": True} if grids and n in grids else {})} for n, p in plan.items()}
    record_change(base, "lowbit", layers=layers, activations=activations)
    record_report(base, "quantize", {"kind": "lowbit", "scheme": config.to_dict(), "quantized_layers": names,
                                     "rounding": rounding,
                                     "packed_weight_bytes": sum(
                                         packed_bytes(base.get_submodule(n).weight.numel(), _groups(base, n, p), p)
                                         for n, p in plan.items())})
    return base, batches


def _groups(model: nn.Module, name: str, plan: LayerPlan) -> int:
    w = model.get_submodule(name).weight
    row = w[0].numel()
    size = row if plan.group_size is None else min(plan.group_size, row)
    return w.shape[0] * math.ceil(row / size)


def _replay(model: nn.Module, change: dict[str, Any]) -> nn.Module:
    """Re-apply the parametrizations; layers rounded on a fixed grid get empty grid buffers of
    the right shape, which loading the weights fills."""
    plan, grids = {}, {}
    for name, entry in change["layers"].items():
        entry = dict(entry)
        fixed = bool(entry.pop("grid", False))
        plan[name] = LayerPlan(**entry)
        if fixed:
            shape = (model.get_submodule(name).weight.shape[0],
                     _groups(model, name, plan[name]) // model.get_submodule(name).weight.shape[0])
            grids[name] = (torch.ones(shape), torch.zeros(shape))
    return apply_plan(model, plan, activations=bool(change.get("activations")), grids=grids)


if "lowbit" not in CHANGES:
    CHANGES.add("lowbit", _replay, doc="low-bit weight parametrizations (slimkit.quantization.lowbit)")
