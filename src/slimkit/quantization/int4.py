"""Real int4 kernels where ONNX Runtime has them, and honest storage where it does not.

A weight-only 4-bit model (:class:`~slimkit.quantization.LowBit` with ``backend="onnxruntime"``)
becomes one ONNX file:

- **Linear layers** run ONNX Runtime's ``MatMulNBits`` (com.microsoft): 4-bit codes packed two
  per byte (low nibble first) in blocks of ``group_size`` inputs with one float scale per block
  and, when not all 8, 4-bit packed zero points. ``accuracy_level=4`` computes in int8
  (activations quantized per block on the fly), 0 in float. The codes are slimkit's own
  (nearest or GPTQ-rounded), not re-rounded, so the file computes what the fake-quantized
  PyTorch model computes. Report: ``KERNEL``.
- **Convolutions** have no int4 kernel in ONNX Runtime: their weights are stored as int4/uint4
  blocked ``DequantizeLinear`` initializers (opset 21) that ONNX Runtime folds to float once,
  when the session loads. The file is smaller; the layer runs at float speed. Report: ``SIZE_ONLY``.

``MatMulNBits`` pays at small batches only. On a Linear-heavy MLP (``bench/int4_runtimes.py``,
1 thread, Xeon) it runs 1.3x faster than slimkit's static int8 at batch 1 but about 6x slower at
batch 256, where int8 GEMMs are compute-bound and the int4 kernel is not; OpenVINO's int4 (0.34x
of int8 at batch 256) and torchao's CPU layout (0.002x) do no better. For large-batch serving,
int8 is the faster choice; int4 is the smaller one.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from slimkit import modelio
from slimkit.errors import ConfigError
from slimkit.export.onnx import OrtModule, onnx_bytes, strip_metadata
from slimkit.export.parity import INT8_CHECK_BATCHES, Tolerance, check_parity
from slimkit.export.serialize import record_report, report_of
from slimkit.quantization.config import INT4_BLOCK_SIZES, LowBit
from slimkit.quantization.lowbit import LayerPlan, LowBitWeight, fake_lowbit, quantize_weight
from slimkit.quantization.ptq import QUANTIZE, _with_history, eval_scope

__all__ = ["INT4_KERNEL", "KERNEL", "SIZE_ONLY", "deploy_int4", "int4_onnx"]

KERNEL = "KERNEL"
SIZE_ONLY = "SIZE_ONLY"
FLOAT = "FLOAT"
_DETAIL = {
    KERNEL: "MatMulNBits: int4 kernel (smaller and int4 compute)",
    SIZE_ONLY: "int4 DequantizeLinear, folded to float at load: no int4 kernel, the gain is size only",
    FLOAT: "weight not found as its own exported initializer (e.g. the exporter merged equal weights): float",
}
#: The file against the fake-quantized model: with ``accuracy_level=4`` MatMulNBits quantizes
#: activations to int8 per block, which moves outputs by a fraction of a percent of their range.
INT4_KERNEL = Tolerance(atol=2e-2, rtol=2e-2, min_agreement=0.95)


def _lowbit_layers(model: nn.Module) -> dict[str, tuple[LayerPlan, Any, Any, torch.Tensor]]:
    """``{layer: (plan, fixed scale or None, fixed zero or None, the weight before rounding)}``."""
    found = {}
    for name, module in model.named_modules():
        if parametrize.is_parametrized(module, "weight") and isinstance(module.parametrizations.weight[0], LowBitWeight):
            p = module.parametrizations.weight[0]
            found[name] = (p.plan, p.scale, p.zero, module.parametrizations.weight.original.detach())
    return found


def _codes(weight: torch.Tensor, plan: LayerPlan, scale: Any, zero: Any,
           block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes (rows, ceil(cols / block) * block) in [0, 16), scales and zero points (rows, blocks).

    ``block`` covers the same columns as the plan's groups (a group never spans two blocks, and
    a row shorter than the group is one block), so the padding (the block's zero point, which
    decodes to exactly 0) changes nothing."""
    rows = weight.detach().float().reshape(weight.shape[0], -1)
    codes, scale, zero = quantize_weight(rows, plan, scale, zero)
    cols = rows.shape[1]
    blocks = math.ceil(cols / block)
    zero_np = zero.numpy().astype(np.uint8).reshape(rows.shape[0], blocks)
    padded = np.empty((rows.shape[0], blocks * block), np.uint8)
    padded[:, :cols] = codes.numpy()
    padded[:, cols:] = zero_np[:, -1:]
    return padded, scale.numpy().astype(np.float32).reshape(rows.shape[0], blocks), zero_np


def _nibbles(values: np.ndarray) -> np.ndarray:
    """Pack 4-bit values two per byte along the last axis, low nibble first (padding a 0)."""
    if values.shape[-1] % 2:
        values = np.concatenate([values, np.zeros((*values.shape[:-1], 1), np.uint8)], axis=-1)
    return (values[..., 0::2] | (values[..., 1::2] << 4)).astype(np.uint8)


def _matmul_nbits(a: str, out: str, name: str, codes: np.ndarray, scale: np.ndarray, zero: np.ndarray,
                  block: int, k: int, accuracy_level: int) -> tuple[Any, list[Any]]:
    """One MatMulNBits node (``out = a @ W.T``) and its initializers."""
    from onnx import helper, numpy_helper

    n = codes.shape[0]
    packed = _nibbles(codes.reshape(n, -1, block))  # (N, blocks, block / 2)
    inits = [numpy_helper.from_array(packed, f"{name}.weight.int4"),
             numpy_helper.from_array(scale.reshape(-1), f"{name}.weight.scale")]
    inputs = [a, inits[0].name, inits[1].name]
    if np.any(zero != 8):  # absent zero points mean 8 (symmetric)
        inits.append(numpy_helper.from_array(_nibbles(zero).reshape(-1), f"{name}.weight.zero"))
        inputs.append(inits[-1].name)
    node = helper.make_node("MatMulNBits", inputs, [out], name=f"{name}/MatMulNBits", domain="com.microsoft",
                            K=k, N=n, bits=4, block_size=block, accuracy_level=accuracy_level)
    return node, inits


def _dequantized(name: str, codes: np.ndarray, scale: np.ndarray, zero: np.ndarray, shape: list[int]
                 ) -> tuple[list[Any], list[Any]]:
    """Nodes producing the float weight ``name`` from int4 (or uint4) codes at load time."""
    from onnx import TensorProto, helper, numpy_helper

    rows, padded = codes.shape
    cols = math.prod(shape[1:])
    signed = bool(np.all(zero == 8))
    kind = TensorProto.INT4 if signed else TensorProto.UINT4
    values = codes.astype(np.int32) - (8 if signed else 0)
    data = helper.make_tensor(f"{name}.int4", kind, [rows, padded], values.reshape(-1).tolist())
    inits = [data, numpy_helper.from_array(scale, f"{name}.scale")]
    inputs = [data.name, f"{name}.scale"]
    if not signed:
        inits.append(helper.make_tensor(f"{name}.zero", TensorProto.UINT4, list(zero.shape), zero.reshape(-1).tolist()))
        inputs.append(f"{name}.zero")
    nodes = [helper.make_node("DequantizeLinear", inputs, [f"{name}.blocks"], axis=1,
                              block_size=padded // scale.shape[1], name=f"{name}/dequantize")]
    source = f"{name}.blocks"
    if padded != cols:
        inits += [numpy_helper.from_array(np.array([0], np.int64), f"{name}.slice_start"),
                  numpy_helper.from_array(np.array([cols], np.int64), f"{name}.slice_end"),
                  numpy_helper.from_array(np.array([1], np.int64), f"{name}.slice_axis")]
        nodes.append(helper.make_node("Slice", [source, f"{name}.slice_start", f"{name}.slice_end",
                                                f"{name}.slice_axis"], [f"{name}.cols"], name=f"{name}/slice"))
        source = f"{name}.cols"
    inits.append(numpy_helper.from_array(np.array(shape, np.int64), f"{name}.shape"))
    nodes.append(helper.make_node("Reshape", [source, f"{name}.shape"], [name], name=f"{name}/reshape"))
    return nodes, inits


def _attr(node: Any, name: str, default: int) -> int:
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _owner(node: Any) -> str:
    scopes = {p.key: p.value for p in node.metadata_props}.get("pkg.torch.onnx.name_scopes", "[]")
    return eval_scope(scopes)


def _kernel_node(node: Any, name: str, layer: nn.Module, inits: dict[str, Any]) -> bool:
    """Whether ``node`` is ``layer``'s matrix product in a form MatMulNBits replaces: ``Gemm``
    on the weight (transB=1), or ``MatMul`` on the weight transposed into a (K, N) initializer."""
    if not isinstance(layer, nn.Linear):
        return False
    if node.op_type == "Gemm":  # the weight's name says whose it is (also inside nn.MultiheadAttention)
        return (node.input[1] == f"{name}.weight" and _attr(node, "transB", 0) == 1
                and _attr(node, "transA", 0) == 0 and _attr(node, "alpha", 1) == 1 and _attr(node, "beta", 1) == 1)
    found = inits.get(node.input[1]) if node.op_type == "MatMul" and _owner(node) == name else None
    return found is not None and list(found.dims) == [layer.in_features, layer.out_features]


def int4_onnx(model: nn.Module, example: Any, *, accuracy_level: int = 4,
              dynamic_axes: dict[str, dict[int, str]] | None = None) -> tuple[bytes, dict[str, str]]:
    """The weight-only 4-bit ``model`` (low-bit layers on groups of 16..256) as ONNX, and per
    low-bit layer how it runs: ``KERNEL``, ``SIZE_ONLY`` or ``FLOAT`` (see the module docstring)."""
    import onnx

    layers = _lowbit_layers(model)
    plain = _plain_copy(model)
    proto = onnx.load_from_string(onnx_bytes(plain, example, opset=21, keep_metadata=True, dynamic_axes=dynamic_axes))
    inits = {i.name: i for i in proto.graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for node in proto.graph.node:
        for value in node.input:
            consumers.setdefault(value, []).append(node)
    how: dict[str, str] = {}
    replaced: dict[int, list[Any]] = {}
    added, removed = [], set()
    for name, (plan, scale, zero, original) in layers.items():
        layer = plain.get_submodule(name)
        products = [n for n in proto.graph.node if n.op_type in ("Gemm", "MatMul") and _kernel_node(n, name, layer, inits)]
        if len(products) == 1 and len(consumers[products[0].input[1]]) == 1 and plan.group_size in INT4_BLOCK_SIZES:
            node = products[0]
            codes, scales, zeros = _codes(original, plan, scale, zero, plan.group_size)
            has_bias = node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]
            out = f"{node.output[0]}_nobias" if has_bias else node.output[0]
            nbits, extra = _matmul_nbits(node.input[0], out, name, codes, scales, zeros, plan.group_size,
                                         layer.in_features, accuracy_level)
            bias = [onnx.helper.make_node("Add", [out, node.input[2]], [node.output[0]], name=f"{name}/bias")
                    ] if has_bias else []
            replaced[id(node)] = [nbits, *bias]
            removed.add(node.input[1])
            how[name] = KERNEL
        elif f"{name}.weight" in inits and consumers.get(f"{name}.weight"):
            key = f"{name}.weight"
            row = original[0].numel()
            codes, scales, zeros = _codes(original, plan, scale, zero, min(plan.group_size or row, row))
            nodes, extra = _dequantized(key, codes, scales, zeros, list(layer.weight.shape))
            first = consumers[key][0]
            replaced[id(first)] = [*nodes, *replaced.get(id(first), [first])]
            removed.add(key)
            how[name] = SIZE_ONLY
        else:
            how[name] = FLOAT
            continue
        added += extra
    rebuilt = [new for node in proto.graph.node for new in replaced.get(id(node), [node])]
    del proto.graph.node[:]
    proto.graph.node.extend(rebuilt)
    kept = [i for i in proto.graph.initializer if i.name not in removed]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend([*kept, *added])
    if not any(o.domain == "com.microsoft" for o in proto.opset_import):
        proto.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    return strip_metadata(proto).SerializeToString(), how


def _plain_copy(model: nn.Module) -> nn.Module:
    """A copy whose low-bit layers hold their dequantized weights as plain parameters (what the
    file computes; the exporter then sees an ordinary Linear/Conv)."""
    clone = copy.deepcopy(model).eval()
    for module in list(clone.modules()):
        if parametrize.is_parametrized(module, "weight"):
            # not remove_parametrizations: a deep copy shares the generated parametrized class
            # with the original, and removing would strip the original's ``weight`` property too
            value = module.weight.detach().clone()
            del module._modules["parametrizations"]
            module.__class__ = module.__class__.__bases__[0]
            module.weight = nn.Parameter(value, requires_grad=False)
    return clone


def deploy_int4(model: nn.Module, fake: nn.Module, config: LowBit, batches: list[Any], example: Any,
                info: dict[str, Any]) -> OrtModule:
    """The fake-quantized ``fake`` as an ONNX Runtime artifact running MatMulNBits, checked
    against ``fake`` on the calibration batches (or the example), with its report: per layer
    ``KERNEL`` or ``SIZE_ONLY`` (``info`` is the PyTorch low-bit report to extend)."""
    example = batches[0] if batches else modelio.example_for(model, example, n=2)
    if example is None:
        raise ConfigError("LowBit backend 'onnxruntime' needs example inputs (or a loader) to export the model",
                          hint="pass example_inputs=..., or a calibration loader")
    data, how = int4_onnx(fake, example, accuracy_level=config.accuracy_level)
    runtime = OrtModule(data)
    parity = check_parity(fake, runtime, [(b,) for b in batches] or [(example,)], tolerance=INT4_KERNEL,
                          max_batches=INT8_CHECK_BATCHES,
                          name="int4 ONNX (MatMulNBits) vs fake-quantized PyTorch")
    info = {**info, "runtime": "onnxruntime", "accuracy_level": config.accuracy_level,
            "layers": {n: {"runs": k, "detail": _DETAIL[k]} for n, k in how.items()},
            "kernel_layers": [n for n, k in how.items() if k == KERNEL],
            "size_only_layers": [n for n, k in how.items() if k == SIZE_ONLY],
            "parity": parity.to_dict()}
    runtime = _with_history(runtime, model, info)
    if getattr(model, "slimkit_spec", None) is not None:
        runtime.slimkit_spec = dict(model.slimkit_spec)
    record_report(runtime, "quantize", info)
    return runtime


@QUANTIZE.register(LowBit)
def lowbit(model: nn.Module, config: LowBit, calib: Any, example: Any) -> nn.Module:
    """``quantize`` with a LowBit config: the fake-quantized model, or with
    ``backend="onnxruntime"`` its ONNX Runtime artifact (MatMulNBits for Linear layers)."""
    fake, batches = fake_lowbit(model, config, calib, example)
    if config.backend != "onnxruntime":
        return fake
    return deploy_int4(model, fake, config, batches, example, report_of(fake, "quantize"))
