"""The typed configs of dynamic inference: :class:`EarlyExit` and :class:`ChannelGating`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from slimkit.config import Config
from slimkit.distillation.recovery import RecoveryConfig
from slimkit.train import TrainConfig

__all__ = ["ChannelGating", "EarlyExit"]


def _exit_training() -> TrainConfig:
    # Linear heads on a frozen network: 4 epochs at 3e-3 (cosine) trained the teacher CNN's exits
    # to 89.3% / 92.0% on Fashion-MNIST where 3 epochs at 1e-3 on 20K samples reached 84.6% / 89.7%.
    # With train_backbone, lower lr (1e-3): the whole network is then fine-tuned.
    return TrainConfig(epochs=4, lr=3e-3, schedule="cosine", progress=False)


class EarlyExit(Config):
    """Exit heads after chosen layers; a sample stops at the first exit confident enough.

    - ``exits``: layer paths or globs whose outputs feed an exit head (each must be a cut point:
      no skip connection crosses it); default: every ``features.{i}`` block but the last;
    - ``head``: the auxiliary heads of ``slimkit.distillation.self_aux``: ``pool`` (average pool
      to a grid of at most 7x7, flattened, linear: cheap and still accurate on early features),
      ``linear`` (global average pool + linear) or ``conv`` (conv3x3-BN-ReLU first);
    - ``train``: the self-distillation run that trains the heads from the final head (CE +
      ``alpha`` * T^2 KL at ``temperature``, as in "Be Your Own Teacher"); by default the network
      itself is frozen (only the heads learn, so the final exit, and the network without exits,
      stay exactly as given); ``train_backbone`` trains it too (BYOT proper);
    - the budget the per-exit thresholds are calibrated to on the validation split, one of
      ``accuracy_drop`` (at most this many points below the final exit; default 0.5), spending
      the least ``cost`` (``latency``: each segment and head timed at batch 1 on this machine;
      or ``macs``), with ``margin`` standard errors of the measured drop added first (default 1:
      with 0, thresholds fitted to the validation split overshot the budget on the test split,
      0.51 points for a 0.5-point budget on the teacher CNN), or ``target_macs`` (mean MACs at
      most this share of the network's);
    - ``criterion``: confidence by the top softmax probability (``maxprob``) or by 1 - normalised
      entropy (``entropy``); ``candidates``: thresholds tried per exit.

    >>> EarlyExit(exits=["features.0"], target_macs=0.6).budget()
    ('target_macs', 0.6)
    >>> EarlyExit().budget(), EarlyExit().margin
    (('accuracy_drop', 0.5), 1.0)
    """

    exits: list[str] | None = None
    head: Literal["pool", "linear", "conv"] = "pool"
    train: TrainConfig = Field(default_factory=_exit_training)
    train_backbone: bool = False
    temperature: float = Field(3.0, gt=0)
    alpha: float = Field(0.5, ge=0, le=1)
    criterion: Literal["maxprob", "entropy"] = "maxprob"
    cost: Literal["latency", "macs"] = "latency"
    margin: float = Field(1.0, ge=0)
    accuracy_drop: float | None = Field(None, ge=0, le=100)
    target_macs: float | None = Field(None, gt=0, le=1)
    candidates: int = Field(64, ge=2, le=1000)
    calibration_batches: int | None = Field(None, ge=1)

    @field_validator("exits")
    @classmethod
    def _some(cls, exits: list[str] | None) -> list[str] | None:
        if exits is not None and (not exits or len(set(exits)) != len(exits)):
            raise ValueError(f"exits must be a non-empty list of distinct layer paths or globs, got {exits}")
        return exits

    @model_validator(mode="after")
    def _one_budget(self) -> EarlyExit:
        if self.accuracy_drop is not None and self.target_macs is not None:
            raise ValueError("give one budget: accuracy_drop (points) or target_macs (share of MACs), not both")
        return self

    def budget(self) -> tuple[str, float]:
        """``(name, value)`` of the calibration budget."""
        if self.target_macs is not None:
            return "target_macs", self.target_macs
        return "accuracy_drop", 0.5 if self.accuracy_drop is None else self.accuracy_drop


def _gating_recovery() -> RecoveryConfig:
    return RecoveryConfig(epochs=2, lr=1e-3)


class ChannelGating(Config):
    """Feature Boosting and Suppression (Gao et al., ICLR 2019) on the chosen convolutions.

    Each gated conv gets a small saliency predictor (global average of its input -> linear ->
    ReLU). Per sample, only the ``density`` share of output channels with the highest saliency
    is kept (winner-take-all); the kept channels are scaled by their saliency and the others are
    zero. At inference the suppressed channels are really skipped: the conv runs with only the
    kept filters (and only the input channels that are non-zero), so the saving is real time.

    - ``include`` / ``exclude``: globs on conv layer names (dense, non-grouped Conv2d only);
    - ``sparsity_weight``: the L1 penalty on the saliencies (the paper's lasso term);
    - ``recover``: the fine-tune that trains the predictors and adapts the network, distilled
      from the ungated model (``slimkit.recover``).

    >>> ChannelGating(density=0.5).include
    ['*']
    """

    include: list[str] = Field(default_factory=lambda: ["*"])
    exclude: list[str] = Field(default_factory=list)
    density: float = Field(0.5, gt=0, le=1)
    sparsity_weight: float = Field(1e-4, ge=0)
    recover: RecoveryConfig = Field(default_factory=_gating_recovery)
