"""Typed configs for weight sharing and the Deep Compression pipeline."""

from __future__ import annotations

import fnmatch
from typing import Literal

from pydantic import Field, field_validator

from slimkit.config import Config, Seed
from slimkit.distillation.recovery import RecoveryConfig


class ShareConfig(Config):
    """k-means weight sharing per layer (Han et al. 2016).

    Each selected Linear/Conv weight gets ``k = 2**bits`` shared values (``k`` overrides);
    ``bits_by_layer`` maps globs to bits for some layers (first match wins), e.g. 8 bits for
    convs and 5 for fully connected layers as in Deep Compression. ``init`` places the first
    centroids evenly between min and max ("linear", best in the paper), at quantiles
    ("density") or on random weights ("random"). Exact zeros (pruned weights) stay zero and
    are not clustered.

    >>> ShareConfig(bits=4, bits_by_layer={"features.*": 8}).bits_for("features.0.conv")
    8
    """

    bits: int = Field(5, ge=1, le=16)
    k: int | None = Field(None, ge=1, le=65536)
    bits_by_layer: dict[str, int] = Field(default_factory=dict)
    init: Literal["linear", "density", "random"] = "linear"
    include: list[str] = Field(default_factory=lambda: ["*"])
    exclude: list[str] = Field(default_factory=list)
    iterations: int = Field(100, ge=1)
    seed: Seed = 0

    @field_validator("bits_by_layer")
    @classmethod
    def _bits_range(cls, value: dict[str, int]) -> dict[str, int]:
        bad = {k: v for k, v in value.items() if not 1 <= v <= 16}
        if bad:
            raise ValueError(f"bits must be in 1..16, got {bad}")
        return value

    def bits_for(self, layer: str) -> int:
        for pattern, bits in self.bits_by_layer.items():
            if fnmatch.fnmatchcase(layer, pattern):
                return bits
        return self.bits

    def k_for(self, layer: str) -> int:
        if self.k is not None and not any(fnmatch.fnmatchcase(layer, p) for p in self.bits_by_layer):
            return self.k
        return 2 ** self.bits_for(layer)


class DeepCompressionConfig(Config):
    """Prune -> cluster -> Huffman (Han et al. 2016), with fine-tunes in between.

    ``sparsity`` maps globs on layer names to the share of weights pruned by magnitude (first
    match wins; unmatched layers are not pruned). ``prune_recovery`` and ``share_recovery`` are
    the fine-tunes after each step, distilling from the original model, when a train loader is given. ``schedule="gradual"`` prunes step by step during the first
    ``ramp`` of the pruning fine-tune's epochs instead of all at once before them (it needs a train loader;
    without one, pruning is one-shot).

    >>> DeepCompressionConfig(sparsity={"*": 0.9}).share.bits
    5
    >>> DeepCompressionConfig(schedule="gradual", ramp=0.6).ramp_steps
    20
    """

    sparsity: dict[str, float] = Field(default_factory=lambda: {"*": 0.9})
    share: ShareConfig = Field(default_factory=ShareConfig)
    # A high learning rate recovers heavy pruning best: on LeNet-300-100 at 92 % sparsity, 3 epochs
    # lost 1.8 points at 1e-3 and 0.5 at 1e-2 (bench/factorize_share.py). One-cycle is the
    # schedule those figures were measured with.
    prune_recovery: RecoveryConfig = Field(
        default_factory=lambda: RecoveryConfig(epochs=1, lr=1e-2, schedule="onecycle", distill_from="input"))
    # "gradual" raises each layer's sparsity along Zhu & Gupta's cubic schedule over the first
    # ``ramp`` share of the prune fine-tune (``ramp_steps`` pruning steps), then trains at the
    # final sparsity. On LeNet-300-100 at 92 % sparsity (Fashion-MNIST, 10 epochs) one-shot
    # pruning lost 0.56 points before sharing and gradual pruning 0.16 (bench/factorize_share.py).
    schedule: Literal["one_shot", "gradual"] = "one_shot"
    ramp: float = Field(0.5, gt=0, le=1)
    ramp_steps: int = Field(20, ge=1)
    share_recovery: RecoveryConfig = Field(
        default_factory=lambda: RecoveryConfig(epochs=1, lr=1e-4, schedule="onecycle", distill_from="input"))

    @field_validator("sparsity")
    @classmethod
    def _fractions(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not 0 <= v < 1}
        if bad:
            raise ValueError(f"sparsity must be in [0, 1), got {bad}")
        return value

    def sparsity_for(self, layer: str) -> float | None:
        for pattern, fraction in self.sparsity.items():
            if fnmatch.fnmatchcase(layer, pattern):
                return fraction
        return None
