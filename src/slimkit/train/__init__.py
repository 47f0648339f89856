"""Training: a Trainer with schedules, mixed precision, checkpoints, exact resume and callbacks.

>>> from slimkit.train import TrainConfig
>>> TrainConfig(epochs=1).schedule
'onecycle'
"""

from slimkit.train.callbacks import Callback
from slimkit.train.checkpoint import load_checkpoint
from slimkit.train.config import TrainConfig
from slimkit.train.loop import Trainer, TrainResult, train
from slimkit.train.optim import build_optimizer, build_scheduler
from slimkit.train.runtime import resolve_device
from slimkit.train.steps import ClassificationLoss, LossFn, evaluate_loss_acc

__all__ = [
    "Callback",
    "ClassificationLoss",
    "LossFn",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "build_optimizer",
    "build_scheduler",
    "evaluate_loss_acc",
    "load_checkpoint",
    "resolve_device",
    "train",
]
