"""Typed quantization configs. ``quantize(model, config)`` dispatches on the config's type.

Every config selects layers by name globs (``include``/``exclude``), so the same selection
reads the same in Python, YAML and the CLI. ``strict=True`` turns "some layers stayed float"
from a warning into an error, for users who demand full quantization.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from slimkit.config import Config
from slimkit.distillation.recovery import RecoveryConfig
from slimkit.errors import ConfigError

__all__ = [
    "BITS_RANGE",
    "INT4_BLOCK_SIZES",
    "QAT",
    "Backend",
    "DynamicInt8",
    "LowBit",
    "MixedPrecision",
    "ObserverName",
    "QuantConfig",
    "Runtime",
    "StaticInt8",
    "bits_problem",
    "check_bits",
]

ObserverName = Literal["minmax", "moving_average", "percentile", "entropy", "mse"]
Backend = Literal["auto", "onnxruntime", "openvino", "x86"]
DynamicBackend = Literal["onnxruntime", "x86"]
#: Runtimes ``backend="auto"`` can choose from (see :mod:`slimkit.quantization.runtime`).
Runtime = Literal["onnxruntime", "openvino", "onnxruntime-qoperator", "openvino-nncf", "fx", "x86-inductor"]
BITS_RANGE = (2, 8)
#: Block sizes ONNX Runtime's int4 ``MatMulNBits`` CPU kernels take (``LowBit(backend="onnxruntime")``).
INT4_BLOCK_SIZES = (16, 32, 64, 128, 256)


def bits_problem(bits: object) -> str | None:
    """Why ``bits`` is not a supported integer bit width, or ``None`` when it is.

    >>> bits_problem(4) is None, bits_problem(9)
    (True, 'is 9, but integer quantization supports 2 to 8 bits')
    """
    lo, hi = BITS_RANGE
    if isinstance(bits, bool) or not isinstance(bits, int) or not lo <= bits <= hi:
        return f"is {bits!r}, but integer quantization supports {lo} to {hi} bits"
    return None


BITS_HINT = "use 8 for int8 kernels, 4 or 2 for low-bit weights; keep a layer in float by excluding it"


def check_bits(bits: int, *, field: str = "bits") -> int:
    """Return ``bits`` or raise ConfigError naming the field and the supported range.

    >>> check_bits(9, field="weight_bits")
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: field 'weight_bits' is 9, but integer quantization supports 2 to 8 bits
      hint: use 8 for int8 kernels, 4 or 2 for low-bit weights; keep a layer in float by excluding it
    """
    problem = bits_problem(bits)
    if problem:
        raise ConfigError(f"field '{field}' {problem}", hint=BITS_HINT)
    return bits


def _valid_bits(value: int) -> int:
    problem = bits_problem(value)
    if problem:  # pydantic turns ValueError into a ConfigError naming the field
        raise ValueError(f"{problem} ({BITS_HINT})")
    return value


class QuantConfig(Config):
    """Fields shared by every scheme: which layers, and whether partial quantization is an error."""

    include: list[str] = Field(default_factory=lambda: ["*"])
    exclude: list[str] = Field(default_factory=list)
    strict: bool = False
    renamed: ClassVar[dict[str, str]] = {"calib_batches": "calibration_batches"}


class DynamicInt8(QuantConfig):
    """Int8 weights, activations quantized on the fly per batch; Linear layers only.

    ``backend="onnxruntime"`` exports to ONNX and runs ORT's dynamic int8 kernels;
    ``"x86"`` uses PyTorch's eager dynamic-quantized Linear (fbgemm/oneDNN int8 kernels).
    ``dynamic_axes`` marks input axes besides the batch that may change size (ONNX Runtime).
    """

    backend: DynamicBackend = "onnxruntime"
    per_channel: bool = True
    dynamic_axes: dict[str, dict[int, str]] | None = None


class StaticInt8(QuantConfig):
    """Int8 weights and activations, calibrated on a loader the user supplies.

    - ``per_channel`` / ``symmetric``: the weight scheme. Activations are uint8 affine, except
      that in the QDQ file (ONNX Runtime, OpenVINO) the model's own float inputs are int8
      symmetric, as NNCF quantizes them: OpenVINO's int8 stem convolution then skips zero-point
      compensation.
    - ``observer``: how activation ranges are chosen (see :mod:`slimkit.quantization.observers`);
      ``percentile`` uses ``percentile``; ``moving_average`` uses ``averaging_constant``.
    - ``calibration_batches``: how many loader batches calibrate.
    - ``weight_bits``: values of weights on a 2..8-bit grid, stored in int8 containers so the
      int8 kernels still run (W4A8 deployable); the real low-bit size comes from ``LowBit``.
    - ``backend``: ``"auto"`` (default) builds the ``runtimes`` candidates, times them on this
      machine at ``batch_sizes`` (``selection_warmup``/``selection_repeats``, ``threads``) and
      keeps the fastest whose calibration accuracy is within ``accuracy_budget`` points of the
      float model's (see :mod:`slimkit.quantization.runtime`); ``"onnxruntime"`` exports the
      quantized graph as ONNX QDQ run by ORT's int8 kernels; ``"openvino"`` runs that same file
      in OpenVINO; ``"x86"`` is the PT2E model in PyTorch (reference int8 ops eagerly; int8
      oneDNN kernels under ``torch.compile``).
    - ``tune_layers`` (auto): also try the file with the convolutions whose int8 kernel is
      measured slower than float in ONNX Runtime (stems, thin depthwise convs) left float; kept
      only if faster end to end. It pays where ONNX Runtime runs the model at every batch size
      (measured on MobileNet: 21.5 -> 17.3 ms at batch 256), and costs a second conversion.
    - ``compile``: for ``x86``, return ``torch.compile(graph)`` (the int8 kernels; compiles on
      first call per input shape) instead of the eager reference graph.
    - ``dynamic_axes``: input axes besides the batch that may change size in the artifact,
      ``{input name: {axis: name}}``, e.g. ``{"input_ids": {1: "sequence"}}``.
    """

    per_channel: bool = True
    symmetric: bool = True
    observer: ObserverName = "minmax"
    percentile: float = 99.99
    averaging_constant: float = 0.01
    calibration_batches: int = Field(32, ge=1)
    weight_bits: int = 8
    backend: Backend = "auto"
    compile: bool = True
    fold_bn: bool = True
    dynamic_axes: dict[str, dict[int, str]] | None = None
    runtimes: list[Runtime] = Field(default_factory=lambda: ["onnxruntime", "openvino"])
    tune_layers: bool = False
    batch_sizes: list[int] = Field(default_factory=lambda: [1, 256])
    accuracy_budget: float = Field(0.3, ge=0.0)
    threads: int | None = Field(None, ge=1)
    selection_warmup: int = Field(2, ge=0)
    selection_repeats: int = Field(10, ge=1)

    @field_validator("batch_sizes")
    @classmethod
    def _batch_sizes(cls, value: list[int]) -> list[int]:
        if not value or any(b < 1 for b in value):
            raise ValueError("needs at least one batch size, each >= 1")
        return sorted(set(value))

    @field_validator("weight_bits")
    @classmethod
    def _bits(cls, value: int) -> int:
        return _valid_bits(value)

    @field_validator("percentile")
    @classmethod
    def _percentile(cls, value: float) -> float:
        if not 50.0 < value <= 100.0:
            raise ValueError("must be in (50, 100]")
        return value


def _qat_recovery() -> RecoveryConfig:
    return RecoveryConfig(epochs=1, lr=1e-4, distill_from="input")


class QAT(StaticInt8):
    """Quantization-aware training: fake-quant (straight-through estimator) inside slimkit's
    Trainer, then the same conversion as :class:`StaticInt8`.

    ``recovery`` is the fine-tune with fake quantization in place: by default one epoch at 1e-4,
    distilling from the float model (``distill_from: none`` trains on cross-entropy alone). The
    loader given to ``quantize`` is the training data. ``epochs``, ``lr``, ``seed`` and
    ``distill`` at the top level are read into ``recovery``, as they were written before.
    """

    observer: ObserverName = "moving_average"
    recovery: RecoveryConfig = Field(default_factory=_qat_recovery)

    @model_validator(mode="before")
    @classmethod
    def _recovery_fields(cls, data: Any) -> Any:
        old = ("epochs", "lr", "seed", "distill")
        if isinstance(data, dict) and any(k in data for k in old):
            data = dict(data)
            recovery = dict(data.get("recovery") or _qat_recovery().model_dump())
            for key in ("epochs", "lr", "seed"):
                if key in data:
                    recovery[key] = data.pop(key)
            if "distill" in data:
                recovery["distill_from"] = "input" if data.pop("distill") else "none"
            data["recovery"] = recovery
        return data

    @field_validator("recovery")
    @classmethod
    def _trains(cls, value: RecoveryConfig) -> RecoveryConfig:
        if value.epochs < 1:
            raise ValueError("QAT trains: recovery.epochs must be >= 1")
        return value


class LowBit(QuantConfig):
    """Low-bit weights (2..8 bits) per output channel or in groups of ``group_size`` inputs.

    The returned model computes with fake-quantized weights (for accuracy), and
    :func:`slimkit.quantization.lowbit.save_packed` writes the packed codes for the real size.
    ``activation_bits=8`` also fake-quantizes each quantized layer's input at 8 bits,
    calibrated with ``observer`` (needs a calibration loader); ``None`` is weight-only.
    ``rounding``: ``"gptq"`` rounds Conv/Linear weights by GPTQ on the calibration data (error
    compensation through the inputs' Hessian, a clipping ratio searched per group, and with
    ``bias_correction`` the mean output shift removed); ``"nearest"`` rounds each weight alone;
    ``"auto"`` is GPTQ when a calibration loader is given.
    ``backend``: ``"pytorch"`` returns the fake-quantized PyTorch model; ``"onnxruntime"``
    returns an ONNX Runtime artifact whose Linear layers run the int4 ``MatMulNBits`` kernel
    (4-bit weight-only, ``group_size`` 16..256, a power of two; convolutions are stored in int4
    but run in float: size only; see :mod:`slimkit.quantization.int4`). ``accuracy_level`` is
    ``MatMulNBits``'s: 4 computes in int8 (activations quantized per block on the fly), 0 in float.
    """

    bits: int = 4
    group_size: int | None = None
    symmetric: bool = True
    activation_bits: Literal[8] | None = 8
    observer: ObserverName = "minmax"
    calibration_batches: int = Field(8, ge=1)
    rounding: Literal["auto", "nearest", "gptq"] = "auto"
    bias_correction: bool = True
    backend: Literal["pytorch", "onnxruntime"] = "pytorch"
    accuracy_level: Literal[0, 1, 2, 3, 4] = 4

    @field_validator("bits")
    @classmethod
    def _bits(cls, value: int) -> int:
        return _valid_bits(value)

    @field_validator("group_size")
    @classmethod
    def _group(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError("must be >= 1 (or null for per-channel)")
        return value

    @model_validator(mode="after")
    def _runtime(self) -> LowBit:
        if self.backend != "onnxruntime":
            return self
        blocks = ", ".join(map(str, INT4_BLOCK_SIZES))
        if self.bits != 4:
            raise ValueError(f"field 'bits' is {self.bits}, but backend 'onnxruntime' (MatMulNBits) takes 4 bits "
                             "(use backend 'pytorch' for other widths)")
        if self.activation_bits is not None:
            raise ValueError(f"field 'activation_bits' is {self.activation_bits}, but backend 'onnxruntime' is "
                             "weight-only (set activation_bits: null; MatMulNBits quantizes activations itself)")
        if self.group_size not in INT4_BLOCK_SIZES:
            raise ValueError(f"field 'group_size' is {self.group_size}, but MatMulNBits takes blocks of {blocks} "
                             "(use backend 'pytorch' for per-channel or other groups)")
        return self
        hint = "backend 'onnxruntime' runs 4-bit weight-only groups of 16..256; use backend 'pytorch' otherwise"
        if self.bits != 4:
            raise ConfigError(f"field 'bits' is {self.bits}, but backend 'onnxruntime' (MatMulNBits) takes 4 bits",
                              hint=hint)
        if self.activation_bits is not None:
            raise ConfigError(f"field 'activation_bits' is {self.activation_bits}, but backend 'onnxruntime' is "
                              "weight-only (MatMulNBits quantizes activations itself)",
                              hint="set activation_bits: null (weight-only)")
        if self.group_size not in INT4_BLOCK_SIZES:
            raise ConfigError(f"field 'group_size' is {self.group_size}, but MatMulNBits takes blocks of "
                              f"{', '.join(map(str, INT4_BLOCK_SIZES))}", hint=hint)
        return self


class MixedPrecision(QuantConfig):
    """Per-layer bit widths from measured sensitivity, meeting a size budget.

    ``target_size`` is the size of the quantizable weights as a fraction of their fp32 size
    (``0.2`` = 5x smaller; 0.25 when neither is given), or ``size_bytes`` an absolute cap on
    the packed weights. Each layer
    gets one of ``choices`` (bits, or 32 for float). ``metric`` is how sensitivity is measured
    when only that layer is quantized: output error (MSE of the logits) or accuracy drop.
    """

    target_size: float | None = None
    size_bytes: int | None = None
    choices: list[int] = Field(default_factory=lambda: [8, 4, 2, 32])
    group_size: int | None = None
    metric: Literal["output_error", "accuracy"] = "output_error"
    calibration_batches: int = Field(4, ge=1)
    renamed: ClassVar[dict[str, str]] = {**QuantConfig.renamed, "budget": "target_size", "budget_bytes": "size_bytes"}

    @field_validator("choices")
    @classmethod
    def _choices(cls, value: list[int]) -> list[int]:
        for bits in value:
            if bits != 32:
                _valid_bits(bits)
        if not value:
            raise ValueError("needs at least one bit width")
        return sorted(set(value), reverse=True)

    @model_validator(mode="after")
    def _budget(self) -> MixedPrecision:
        if self.target_size is not None and self.size_bytes is not None:
            raise ValueError("give one of target_size (fraction of fp32 size) or size_bytes, not both")
        if self.size_bytes is not None and self.size_bytes < 1:
            raise ValueError("size_bytes must be positive")
        if self.target_size is not None and not 0 < self.target_size <= 1:
            raise ValueError("target_size must be a fraction in (0, 1]")
        return self

    @property
    def fraction(self) -> float | None:
        """The budget as a fraction of fp32 size (``None`` when ``size_bytes`` is given)."""
        if self.size_bytes is not None:
            return None
        return 0.25 if self.target_size is None else self.target_size
