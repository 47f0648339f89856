"""Knowledge distillation: feature capture, adapters, losses, and the strategies built on them.

>>> from slimkit.distill import DistillConfig, distill, DistillationLoss, recover  # the main entry points
"""


from slimkit.distill.adapters import LazyAdapter, match_spatial
from slimkit.distill.batches import (
    INDEX_KEY,
    IndexedDataset,
    augments,
    sample_indices,
    with_indices,
)
from slimkit.distill.born_again import GenerationEnsemble, born_again, fresh_copy
from slimkit.distill.config import DEFAULT_LOSSES, DistillConfig
from slimkit.distill.core import DistillationLoss, freeze_teacher
from slimkit.distill.derive import derive_student, student_spec
from slimkit.distill.hooks import FeatureCapture
from slimkit.distill.losses import (
    LOSSES,
    ATLoss,
    DistillLoss,
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
from slimkit.distill.losses.adversarial import (
    AdversarialLoss,
    GradientReversal,
    grad_reverse,
)
from slimkit.distill.multi_teacher import (
    TeacherEnsemble,
    combine_logits,
    teacher_weights,
)
from slimkit.distill.mutual import MutualLoss, PeerEnsemble, PeerValidation, mutual
from slimkit.distill.offline import DistillResult, distill, teacher_caches
from slimkit.distill.pseudo_label import distill_pseudo, pseudo_label, withhold_labels
from slimkit.distill.recovery import recover
from slimkit.distill.self_aux import AuxHead, SelfDistillLoss, self_distill
from slimkit.distill.teacher_cache import CACHE_VERSION, TeacherCache
from slimkit.distill.views import VIEWS, View, Viewed, build_view

__all__ = [
    "CACHE_VERSION",
    "DEFAULT_LOSSES",
    "INDEX_KEY",
    "LOSSES",
    "VIEWS",
    "ATLoss",
    "AdversarialLoss",
    "AuxHead",
    "DKDLoss",
    "DistillConfig",
    "DistillLoss",
    "DistillResult",
    "DistillationLoss",
    "FeatureCapture",
    "FitNetLoss",
    "GenerationEnsemble",
    "GradientReversal",
    "HardLabelLoss",
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
    "SPLoss",
    "SelfDistillLoss",
    "TeacherCache",
    "TeacherEnsemble",
    "View",
    "Viewed",
    "WeightedSumLoss",
    "augments",
    "born_again",
    "build_loss",
    "build_losses",
    "build_view",
    "combine_logits",
    "derive_student",
    "distill",
    "distill_pseudo",
    "freeze_teacher",
    "fresh_copy",
    "grad_reverse",
    "loss_arguments",
    "match_spatial",
    "materialize",
    "mutual",
    "pseudo_label",
    "recover",
    "required_features",
    "sample_indices",
    "self_distill",
    "student_spec",
    "teacher_caches",
    "teacher_weights",
    "with_indices",
    "withhold_labels",
]

from slimkit._verbs import make_callable

make_callable(__name__)  # slimkit.distill(student, teacher, loader, config) calls distill()
