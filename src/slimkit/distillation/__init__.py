"""Knowledge distillation: feature capture, adapters, losses, and the strategies built on them.

>>> from slimkit.distillation import DistillConfig, distill, DistillationLoss, RecoveryConfig, recover
"""


from slimkit.distillation.adapters import LazyAdapter, match_spatial
from slimkit.distillation.augment import Augmentation, AugmentedLoader, BatchAugmenter
from slimkit.distillation.batches import (
    INDEX_KEY,
    IndexedDataset,
    augments,
    sample_indices,
    with_indices,
)
from slimkit.distillation.born_again import GenerationEnsemble, born_again, fresh_copy
from slimkit.distillation.chain import TAKD, build_assistant, distill_chain
from slimkit.distillation.config import DEFAULT_LOSSES, DistillConfig
from slimkit.distillation.core import DistillationLoss, freeze_teacher
from slimkit.distillation.derive import derive_student, student_spec
from slimkit.distillation.hooks import FeatureCapture
from slimkit.distillation.layers import init_from_layers, layer_map, shallow_student, transformer_losses
from slimkit.distillation.losses import (
    LOSSES,
    ATLoss,
    DistillLoss,
    DISTLoss,
    DKDLoss,
    FitNetLoss,
    HardLabelLoss,
    KDLoss,
    LogitStandardKDLoss,
    LossTerm,
    Outputs,
    PKTLoss,
    RKDLoss,
    SPLoss,
    WeightedSumLoss,
    build_loss,
    build_losses,
    loss_arguments,
    materialize,
    required_features,
)
from slimkit.distillation.losses.adversarial import (
    AdversarialLoss,
    GradientReversal,
    grad_reverse,
)
from slimkit.distillation.losses.transformer import AttentionLoss, DeiTLoss, HiddenStateLoss, RelationLoss
from slimkit.distillation.multi_teacher import (
    TeacherEnsemble,
    combine_logits,
    teacher_weights,
)
from slimkit.distillation.mutual import MutualLoss, PeerEnsemble, PeerValidation, mutual
from slimkit.distillation.offline import DISTILL, DistillResult, distill, run_distillation, teacher_caches
from slimkit.distillation.pseudo_label import distill_pseudo, pseudo_label, withhold_labels
from slimkit.distillation.recovery import RecoveryConfig, recover
from slimkit.distillation.self_aux import AuxHead, SelfDistillLoss, self_distill
from slimkit.distillation.teacher_cache import CACHE_VERSION, TeacherCache
from slimkit.distillation.teachers import (
    TemperatureScaled,
    accelerated_teacher,
    calibrated_teacher,
    fit_temperature,
    init_from_teacher,
)
from slimkit.distillation.views import VIEWS, View, Viewed, build_view

__all__ = [
    "CACHE_VERSION",
    "DEFAULT_LOSSES",
    "DISTILL",
    "INDEX_KEY",
    "LOSSES",
    "TAKD",
    "VIEWS",
    "ATLoss",
    "AdversarialLoss",
    "AttentionLoss",
    "Augmentation",
    "AugmentedLoader",
    "AuxHead",
    "BatchAugmenter",
    "DISTLoss",
    "DKDLoss",
    "DeiTLoss",
    "DistillConfig",
    "DistillLoss",
    "DistillResult",
    "DistillationLoss",
    "FeatureCapture",
    "FitNetLoss",
    "GenerationEnsemble",
    "GradientReversal",
    "HardLabelLoss",
    "HiddenStateLoss",
    "IndexedDataset",
    "KDLoss",
    "LazyAdapter",
    "LogitStandardKDLoss",
    "LossTerm",
    "MutualLoss",
    "Outputs",
    "PKTLoss",
    "PeerEnsemble",
    "PeerValidation",
    "RKDLoss",
    "RecoveryConfig",
    "RelationLoss",
    "SPLoss",
    "SelfDistillLoss",
    "TeacherCache",
    "TeacherEnsemble",
    "TemperatureScaled",
    "View",
    "Viewed",
    "WeightedSumLoss",
    "accelerated_teacher",
    "augments",
    "born_again",
    "build_assistant",
    "build_loss",
    "build_losses",
    "build_view",
    "calibrated_teacher",
    "combine_logits",
    "derive_student",
    "distill",
    "distill_chain",
    "distill_pseudo",
    "fit_temperature",
    "freeze_teacher",
    "fresh_copy",
    "grad_reverse",
    "init_from_layers",
    "init_from_teacher",
    "layer_map",
    "loss_arguments",
    "match_spatial",
    "materialize",
    "mutual",
    "pseudo_label",
    "recover",
    "required_features",
    "run_distillation",
    "sample_indices",
    "self_distill",
    "shallow_student",
    "student_spec",
    "teacher_caches",
    "teacher_weights",
    "transformer_losses",
    "with_indices",
    "withhold_labels",
]
