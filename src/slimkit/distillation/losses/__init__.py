"""Distillation losses: each an ``nn.Module`` called as ``loss(student, teacher, batch)``."""

from slimkit.distillation.losses.adversarial import (
    AdversarialLoss,
    GradientReversal,
    grad_reverse,
)
from slimkit.distillation.losses.base import (
    DistillLoss,
    Outputs,
    materialize,
    required_features,
)
from slimkit.distillation.losses.combine import (
    LOSSES,
    LossTerm,
    WeightedSumLoss,
    build_loss,
    build_losses,
    loss_arguments,
)
from slimkit.distillation.losses.feature import ATLoss, FitNetLoss, attention_map
from slimkit.distillation.losses.logit import (
    DISTLoss,
    DKDLoss,
    HardLabelLoss,
    KDLoss,
    LogitStandardKDLoss,
    soft_kl,
    standardize,
)
from slimkit.distillation.losses.probabilistic import PKTLoss, cosine_conditionals
from slimkit.distillation.losses.relation import RKDLoss, SPLoss, pairwise_distances

__all__ = [
    "LOSSES",
    "ATLoss",
    "AdversarialLoss",
    "DISTLoss",
    "DKDLoss",
    "DistillLoss",
    "FitNetLoss",
    "GradientReversal",
    "HardLabelLoss",
    "KDLoss",
    "LogitStandardKDLoss",
    "LossTerm",
    "Outputs",
    "PKTLoss",
    "RKDLoss",
    "SPLoss",
    "WeightedSumLoss",
    "attention_map",
    "build_loss",
    "build_losses",
    "cosine_conditionals",
    "grad_reverse",
    "loss_arguments",
    "materialize",
    "pairwise_distances",
    "required_features",
    "soft_kl",
    "standardize",
]

# Transformer losses (hidden, attention, relation, deit) register themselves in LOSSES on import.
from slimkit.distillation.losses import transformer as _transformer  # noqa: F401
