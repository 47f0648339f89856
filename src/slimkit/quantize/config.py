"""Typed quantization configs. ``quantize(model, config)`` dispatches on the config's type.

Every config selects layers by name globs (``include``/``exclude``), so the same selection
reads the same in Python, YAML and the CLI. ``strict=True`` turns "some layers stayed float"
from a warning into an error, for users who demand full quantization.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from slimkit.config import Config
from slimkit.errors import ConfigError

__all__ = [
    "BITS_RANGE",
    "QAT",
    "Backend",
    "DynamicInt8",
    "LowBit",
    "MixedPrecision",
    "ObserverName",
    "QuantConfig",
    "StaticInt8",
    "bits_problem",
    "check_bits",
]

ObserverName = Literal["minmax", "moving_average", "percentile", "entropy", "mse"]
Backend = Literal["onnxruntime", "x86"]
BITS_RANGE = (2, 8)


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


class DynamicInt8(QuantConfig):
    """Int8 weights, activations quantized on the fly per batch; Linear layers only.

    ``backend="onnxruntime"`` exports to ONNX and runs ORT's dynamic int8 kernels;
    ``"x86"`` uses PyTorch's eager dynamic-quantized Linear (fbgemm/oneDNN int8 kernels).
    """

    backend: Backend = "onnxruntime"
    per_channel: bool = True


class StaticInt8(QuantConfig):
    """Int8 weights and activations, calibrated on a loader the user supplies.

    - ``per_channel`` / ``symmetric``: the weight scheme (activations are uint8 affine).
    - ``observer``: how activation ranges are chosen (see :mod:`slimkit.quantize.observers`);
      ``percentile`` uses ``percentile``; ``moving_average`` uses ``averaging_constant``.
    - ``calib_batches``: how many loader batches calibrate.
    - ``weight_bits``: values of weights on a 2..8-bit grid, stored in int8 containers so the
      int8 kernels still run (W4A8 deployable); the real low-bit size comes from ``LowBit``.
    - ``backend``: ``"onnxruntime"`` (default: the measured-faster runtime on this CPU; exports
      the quantized graph as ONNX QDQ and runs ORT's int8 kernels) or ``"x86"`` (the PT2E model in
      PyTorch: reference int8 ops eagerly; int8 oneDNN kernels under ``torch.compile``).
    - ``compile``: for ``x86``, return ``torch.compile(graph)`` (the int8 kernels; compiles on
      first call per input shape) instead of the eager reference graph.
    """

    per_channel: bool = True
    symmetric: bool = True
    observer: ObserverName = "minmax"
    percentile: float = 99.99
    averaging_constant: float = 0.01
    calib_batches: int = 32
    weight_bits: int = 8
    backend: Backend = "onnxruntime"
    compile: bool = True
    fold_bn: bool = True

    @field_validator("weight_bits")
    @classmethod
    def _bits(cls, value: int) -> int:
        return _valid_bits(value)

    @field_validator("calib_batches")
    @classmethod
    def _batches(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be >= 1")
        return value

    @field_validator("percentile")
    @classmethod
    def _percentile(cls, value: float) -> float:
        if not 50.0 < value <= 100.0:
            raise ValueError("must be in (50, 100]")
        return value


class QAT(StaticInt8):
    """Quantization-aware training: fake-quant (straight-through estimator) inside slimkit's
    Trainer, then the same conversion as :class:`StaticInt8`.

    ``distill=True`` fine-tunes by distilling from the float model (``slimkit.distill.recover``)
    where that is available, plain cross-entropy otherwise. ``train_loader`` is passed to
    ``quantize`` as the calibration/training loader.
    """

    observer: ObserverName = "moving_average"
    epochs: int = 1
    lr: float = 1e-4
    distill: bool = True
    seed: int = 0

    @field_validator("epochs")
    @classmethod
    def _epochs(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be >= 1")
        return value


class LowBit(QuantConfig):
    """Low-bit weights (2..8 bits) per output channel or in groups of ``group_size`` inputs.

    The returned model computes with fake-quantized weights (for accuracy), and
    :func:`slimkit.quantize.lowbit.save_packed` writes the packed codes for the real size.
    ``activation_bits=8`` also fake-quantizes each quantized layer's input at 8 bits,
    calibrated with ``observer`` (needs a calibration loader); ``None`` is weight-only.
    """

    bits: int = 4
    group_size: int | None = None
    symmetric: bool = True
    activation_bits: Literal[8] | None = 8
    observer: ObserverName = "minmax"
    calib_batches: int = 8

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


class MixedPrecision(QuantConfig):
    """Per-layer bit widths from measured sensitivity, meeting a size budget.

    ``budget`` is the target size of the quantizable weights as a fraction of their fp32 size
    (``0.2`` = 5x smaller; 0.25 when neither is given), or ``budget_bytes`` an absolute cap on
    the packed weights. Each layer
    gets one of ``choices`` (bits, or 32 for float). ``metric`` is how sensitivity is measured
    when only that layer is quantized: output error (MSE of the logits) or accuracy drop.
    """

    budget: float | None = None
    budget_bytes: int | None = None
    choices: list[int] = Field(default_factory=lambda: [8, 4, 2, 32])
    group_size: int | None = None
    metric: Literal["output_error", "accuracy"] = "output_error"
    calib_batches: int = 4

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
        if self.budget is not None and self.budget_bytes is not None:
            raise ValueError("give one of budget (fraction of fp32 size) or budget_bytes, not both")
        if self.budget_bytes is not None and self.budget_bytes < 1:
            raise ValueError("budget_bytes must be positive")
        if self.budget is not None and not 0 < self.budget <= 1:
            raise ValueError("budget must be a fraction in (0, 1]")
        return self

    @property
    def fraction(self) -> float | None:
        """The budget as a fraction of fp32 size (``None`` when ``budget_bytes`` is given)."""
        if self.budget_bytes is not None:
            return None
        return 0.25 if self.budget is None else self.budget
