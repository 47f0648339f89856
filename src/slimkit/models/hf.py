"""Hugging Face ``transformers`` models, rebuilt from data alone (``pip install 'slimkit[hf]'``).

A Hugging Face model is not one of slimkit's own, so persistence cannot call a factory it knows
to rebuild it. These entries of ``LIBRARY_MODELS`` (beside the zoo's ``MODELS``: ``build_model``,
saved models and recipes find both) make it one: the model class comes from an allow-list
(:data:`ARCHITECTURES`, never a name imported from a file) and its configuration is a plain
JSON mapping read by that class's own ``PretrainedConfig.from_dict``. ``save_model`` then writes
``{"name": "hf", "kwargs": {"architecture": ..., "config": {...}}}`` and ``load_model`` rebuilds
the same model in a fresh process without importing user code or unpickling anything. Weights
start random (nothing is ever downloaded) and come from the saved safetensors file.

- ``hf``: any allowed architecture with its config as a mapping;
- ``hf_bert``: a BERT sequence classifier over token IDs with a few flat knobs;
- ``hf_vit``: a ViT image classifier (``distillation_token=True``: DeiT's, with a distillation
  token and a second head).

The data's shape fills what the config would otherwise repeat: ``num_classes`` becomes
``num_labels``; for image models ``in_channels`` and ``input_size`` become ``num_channels`` and
``image_size``.

>>> from slimkit.models import build_model
>>> vit = build_model("hf_vit", input_size=8, patch_size=4, hidden_size=16, layers=1, heads=2, num_classes=3)
>>> type(vit).__name__, vit.config.num_hidden_layers
('ViTForImageClassification', 1)
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from torch import nn

from slimkit.errors import ConfigError
from slimkit.models._blocks import positive_int
from slimkit.models._registry import LIBRARY_MODELS
from slimkit.registry import did_you_mean

#: The model classes slimkit builds: ``class name -> (config class name, input kind)``. Only
#: names in this table are ever looked up in ``transformers``.
ARCHITECTURES: dict[str, tuple[str, str]] = {
    "BertForSequenceClassification": ("BertConfig", "tokens"),
    "RobertaForSequenceClassification": ("RobertaConfig", "tokens"),
    "ViTForImageClassification": ("ViTConfig", "images"),
    "DeiTForImageClassification": ("DeiTConfig", "images"),
    "DeiTForImageClassificationWithTeacher": ("DeiTConfig", "images"),
}
#: Config keys the data's shape sets (``num_classes``, ``in_channels``, ``input_size``).
SHAPE_KEYS = {"num_labels": "num_classes", "num_channels": "in_channels", "image_size": "input_size"}
#: Attention kernels a config may ask for; ``eager`` is the default because it exports to ONNX as
#: plain MatMul/Softmax (which ONNX Runtime's int8 quantizer understands) and runs on every backend.
ATTENTION = ("eager", "sdpa")


def transformers_module() -> Any:
    """``import transformers``, or a ConfigError saying how to install it."""
    try:
        return importlib.import_module("transformers")
    except ImportError:
        raise ConfigError("Hugging Face models need the 'transformers' package, which is not installed",
                          hint="pip install 'slimkit[hf]'") from None


def _check_keys(config_cls: Any, given: Mapping[str, Any], architecture: str) -> None:
    for key, knob in SHAPE_KEYS.items():
        if key in given:
            raise ConfigError(f"model 'hf' ({architecture}): config field '{key}' is set by the knob '{knob}'",
                              hint=f"drop '{key}' from the config and set {knob} (recipes take it from the data)")
    known = set(config_cls().to_dict()) | {"attn_implementation"}
    unknown = sorted(k for k in given if k not in known)
    if unknown:
        raise ConfigError(f"model 'hf' ({architecture}): config has no field '{unknown[0]}'."
                          f"{did_you_mean(unknown[0], sorted(known))}",
                          hint=f"fields of {config_cls.__name__}: see transformers' documentation")


def hf(*, in_channels: int = 1, num_classes: int = 10, input_size: int = 28,
       architecture: str = "BertForSequenceClassification", config: Mapping[str, Any] | None = None) -> nn.Module:
    """A ``transformers`` model of class ``architecture`` (from :data:`ARCHITECTURES`) built from
    ``config`` (that class's config fields as a mapping), randomly initialized.

    >>> net = hf(architecture="BertForSequenceClassification", num_classes=2, input_size=16,
    ...          config={"vocab_size": 20, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
    ...                  "intermediate_size": 16, "max_position_embeddings": 16})
    >>> net.config.num_labels, net.config._attn_implementation
    (2, 'eager')
    >>> hf(architecture="GPT2LMHeadModel")
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: model 'hf': architecture 'GPT2LMHeadModel' is not one slimkit builds.
      hint: allowed: BertForSequenceClassification, DeiTForImageClassification, ...
    """
    if not isinstance(architecture, str) or architecture not in ARCHITECTURES:
        known = sorted(ARCHITECTURES)
        raise ConfigError(f"model 'hf': architecture {architecture!r} is not one slimkit builds."
                          f"{did_you_mean(str(architecture), known)}", hint=f"allowed: {', '.join(known)}")
    given = dict(config or {})
    if not isinstance(config or {}, Mapping):
        raise ConfigError(f"model 'hf': config must be a mapping of config fields, got {type(config).__name__}")
    config_name, kind = ARCHITECTURES[architecture]
    lib = transformers_module()
    config_cls = getattr(lib, config_name)
    _check_keys(config_cls, given, architecture)
    attention = given.pop("attn_implementation", "eager")
    if attention not in ATTENTION:
        raise ConfigError(f"model 'hf': attn_implementation must be one of {', '.join(ATTENTION)}, got {attention!r}")
    fields = {**given, "num_labels": positive_int("hf", "num_classes", num_classes)}
    if kind == "images":
        fields["num_channels"] = positive_int("hf", "in_channels", in_channels)
        fields["image_size"] = positive_int("hf", "input_size", input_size)
    try:
        built = config_cls.from_dict(fields)
        built._attn_implementation = attention
        model = getattr(lib, architecture)(built)
    except (ValueError, TypeError, AttributeError) as exc:  # transformers' own checks (hidden % heads, ...)
        raise ConfigError(f"model 'hf' ({architecture}): {str(exc).splitlines()[0]}",
                          hint="fix the config fields named above") from None
    if kind == "images":
        model.slimkit_inputs = {"kind": "tensor", "tensors": [
            {"name": "pixel_values", "shape": [in_channels, input_size, input_size], "dtype": "float32"}]}
    else:  # token IDs of the data's sequence length (input_size), drawn below the vocabulary size
        positions = built.max_position_embeddings
        if input_size > positions:
            raise ConfigError(f"model 'hf' ({architecture}): sequences of {input_size} tokens do not fit "
                              f"max_position_embeddings={positions}", hint="raise max_position_embeddings (max_length)")
        model.slimkit_inputs = {"kind": "tensor", "tensors": [
            {"name": "input_ids", "shape": [input_size], "dtype": "int64", "high": int(built.vocab_size)}]}
    return model


LIBRARY_MODELS.add("hf", hf, doc="a Hugging Face transformers model (allow-listed class, config as a mapping)",
           input_sizes=(28, 8), params=None)


@LIBRARY_MODELS.register("hf_bert", doc="BERT sequence classifier (Hugging Face) over token IDs, random init",
                 input_sizes=(), params=None)
def hf_bert(*, in_channels: int = 1, num_classes: int = 2, input_size: int = 64, vocab_size: int = 1000,
            hidden_size: int = 128, layers: int = 4, heads: int = 4, intermediate_size: int = 512,
            max_length: int = 128, dropout: float = 0.1) -> nn.Module:
    """``BertForSequenceClassification`` with flat knobs; ``max_length`` is the most tokens a
    sequence may have (position embeddings). ``in_channels`` and ``input_size`` are the data's
    shape, which token data does not need.

    >>> net = hf_bert(input_size=8, vocab_size=30, hidden_size=8, layers=1, heads=2, intermediate_size=16, max_length=16)
    >>> net.bert.encoder.layer[0].attention.self.num_attention_heads
    2
    """
    config = {"vocab_size": positive_int("hf_bert", "vocab_size", vocab_size),
              "hidden_size": positive_int("hf_bert", "hidden_size", hidden_size),
              "num_hidden_layers": positive_int("hf_bert", "layers", layers),
              "num_attention_heads": positive_int("hf_bert", "heads", heads),
              "intermediate_size": positive_int("hf_bert", "intermediate_size", intermediate_size),
              "max_position_embeddings": positive_int("hf_bert", "max_length", max_length),
              "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    return hf(in_channels=in_channels, num_classes=num_classes, input_size=input_size,
              architecture="BertForSequenceClassification", config=config)


@LIBRARY_MODELS.register("hf_vit", doc="ViT image classifier (Hugging Face; DeiT's with distillation_token), random init",
                 input_sizes=(28, 8), params=None)
def hf_vit(*, in_channels: int = 1, num_classes: int = 10, input_size: int = 28, patch_size: int = 4,
           hidden_size: int = 64, layers: int = 4, heads: int = 4, intermediate_size: int = 128,
           dropout: float = 0.0, distillation_token: bool = False) -> nn.Module:
    """``ViTForImageClassification`` with flat knobs; ``distillation_token=True`` builds
    ``DeiTForImageClassificationWithTeacher`` instead (a distillation token and head: see
    :class:`slimkit.distillation.DeiTLoss`), whose ``logits`` average its two heads.

    >>> hf_vit(input_size=8, patch_size=4, hidden_size=16, layers=1, heads=2).config.image_size
    8
    """
    if input_size % positive_int("hf_vit", "patch_size", patch_size):
        raise ConfigError(f"model 'hf_vit': patch_size {patch_size} does not divide input_size {input_size}",
                          hint="use a patch size that divides the image size, e.g. 4 or 7 for 28x28")
    config = {"hidden_size": positive_int("hf_vit", "hidden_size", hidden_size),
              "num_hidden_layers": positive_int("hf_vit", "layers", layers),
              "num_attention_heads": positive_int("hf_vit", "heads", heads),
              "intermediate_size": positive_int("hf_vit", "intermediate_size", intermediate_size),
              "patch_size": patch_size, "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    architecture = "DeiTForImageClassificationWithTeacher" if distillation_token else "ViTForImageClassification"
    return hf(in_channels=in_channels, num_classes=num_classes, input_size=input_size, architecture=architecture,
              config=config)
