"""Small model zoo (mlp, lenet5, cnn, resnet, mobilenet, and the search families searchnet and
dartsnet) with width and depth knobs, and Hugging Face transformers built from their configs
(hf, hf_bert, hf_vit; :mod:`slimkit.models.hf`).

Every model has ``features`` (stages/blocks) and ``classifier`` (head, logits layer ``out``) so
layers can be chosen by name globs such as ``"features.*.conv"``.

>>> from slimkit.models import DEFAULT_STUDENT, build_model
>>> student = build_model(DEFAULT_STUDENT[0], **DEFAULT_STUDENT[1])
>>> sum(p.numel() for p in student.parameters())
14002
"""

from slimkit.models._registry import LIBRARY_MODELS, MODELS, is_model, model_names
from slimkit.models.build import (
    DEFAULT_STUDENT,
    DEFAULT_TEACHER,
    build_model,
    model_knobs,
)
from slimkit.models.cnn import VGGNet, cnn
from slimkit.models.dartsnet import DartsNet, dartsnet
from slimkit.models.hf import ARCHITECTURES, hf, hf_bert, hf_vit
from slimkit.models.lenet import LeNet5, lenet5
from slimkit.models.mlp import MLP, mlp
from slimkit.models.mobilenet import MobileNet, mobilenet
from slimkit.models.resnet import BasicBlock, ResNet, resnet
from slimkit.models.searchnet import SearchNet, searchnet
from slimkit.models.spec import ModelSpec, parse_model_spec

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_STUDENT",
    "DEFAULT_TEACHER",
    "LIBRARY_MODELS",
    "MLP",
    "MODELS",
    "BasicBlock",
    "DartsNet",
    "LeNet5",
    "MobileNet",
    "ModelSpec",
    "ResNet",
    "SearchNet",
    "VGGNet",
    "build_model",
    "cnn",
    "dartsnet",
    "hf",
    "hf_bert",
    "hf_vit",
    "is_model",
    "lenet5",
    "mlp",
    "mobilenet",
    "model_knobs",
    "model_names",
    "parse_model_spec",
    "resnet",
    "searchnet",
]
