"""Quantization: one verb, ``quantize(model, config, calib_loader)``, dispatching on the config type.

- :class:`StaticInt8`: post-training int8 with calibration (minmax, moving average,
  percentile, entropy, MSE), per-tensor/per-channel, symmetric/asymmetric weights; by default
  runs on the runtime measured fastest here (ONNX Runtime or OpenVINO per batch size, see
  :mod:`slimkit.quantization.runtime`), or on one named runtime, or as a PyTorch PT2E graph
  (``backend="x86"``).
- :class:`DynamicInt8`: int8 Linear layers with per-batch activation scales.
- :class:`QAT`: fake-quant fine-tuning in slimkit's Trainer (optionally distilled), then int8.
- :class:`LowBit`: 2..8-bit weights per channel or group, 8-bit activations, packed storage.
- :class:`MixedPrecision`: per-layer widths from measured sensitivity under a size budget.
- :class:`EmbeddingInt8`: weight-only int8 embedding tables (transformers' token embeddings).

torchao (PT2E) is imported only when a scheme needs it.
"""

from slimkit.quantization.calibrate import QuantizationWarning, calibration_batches
from slimkit.quantization.config import (
    QAT,
    DynamicInt8,
    LowBit,
    MixedPrecision,
    QuantConfig,
    StaticInt8,
    check_bits,
)
from slimkit.quantization.embedding import EmbeddingInt8, Int8Embedding
from slimkit.quantization.lowbit import (
    LayerPlan,
    dequantize_weight,
    load_packed,
    pack_codes,
    quantize_weight,
    save_packed,
    unpack_codes,
)
from slimkit.quantization.mixed import MixedPlan, allocate, sensitivity
from slimkit.quantization.observers import (
    OBSERVERS,
    EntropyObserver,
    MinMaxObserver,
    MovingAverageObserver,
    MSEObserver,
    PercentileObserver,
    build_observer,
    qparams,
)
from slimkit.quantization.ptq import QUANTIZE, quantize
from slimkit.quantization.qat import convert_qat, prepare_qat, train_qat

__all__ = [
    "OBSERVERS",
    "QAT",
    "QUANTIZE",
    "DynamicInt8",
    "EmbeddingInt8",
    "EntropyObserver",
    "Int8Embedding",
    "LayerPlan",
    "LowBit",
    "MSEObserver",
    "MinMaxObserver",
    "MixedPlan",
    "MixedPrecision",
    "MovingAverageObserver",
    "PercentileObserver",
    "QuantConfig",
    "QuantizationWarning",
    "StaticInt8",
    "allocate",
    "build_observer",
    "calibration_batches",
    "check_bits",
    "convert_qat",
    "dequantize_weight",
    "load_packed",
    "pack_codes",
    "prepare_qat",
    "qparams",
    "quantize",
    "quantize_weight",
    "save_packed",
    "sensitivity",
    "train_qat",
    "unpack_codes",
]
