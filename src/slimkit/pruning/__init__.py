"""Pruning that really makes models smaller and faster.

- ``prune(model, UnstructuredPruning(...))``: magnitude or random weight masks (parametrizations),
  per layer or global; ``make_permanent`` bakes them in; ``save_sparse`` stores them compactly.
- ``prune(model, StructuredPruning(...), loader)``: physical channel removal through a
  dependency graph (residual adds, concatenations, BatchNorm, depthwise and grouped convs,
  squeeze-and-excitation, flatten heads, LayerNorm, token-mixing Linears over a transposed axis,
  ``nn.MultiheadAttention`` with whole heads), by criterion (``IMPORTANCE``: l1, l2, bn_scale,
  taylor, activation, random) to a channel, MACs, parameter or latency target. It cuts a copy
  and swaps it in on success, so a failure leaves the model as it was; layers it cannot follow
  are left whole with a ``PruningWarning``.
- ``prune(model, AttentionPruning(heads=..., ffn=..., layers=...), loader)``: whole attention heads
  (Michel et al.'s importance), feed-forward neurons and layers of transformers (Hugging Face
  BERT/ViT-style, ``nn.MultiheadAttention``, ``nn.TransformerEncoder``), with head counts,
  widths and depth updated (:mod:`slimkit.pruning.attention`).
- Schedules (one-shot, iterative, gradual cubic), Network Slimming's ``BNSparsity``, sensitivity
  analysis with automatic per-layer ratios, BatchNorm re-estimation after a cut
  (``recalibrate_bn``); recover accuracy afterwards with :func:`slimkit.recover`.

>>> from slimkit.models import build_model
>>> net = build_model("cnn", channels=[8, 16], hidden=16, input_size=8)
>>> net = prune(net, StructuredPruning(target_macs=0.5, round_to=2))
>>> net.slimkit_history[-1]["macs"][1] <= 0.5 * net.slimkit_history[-1]["macs"][0]
True
"""

from slimkit.pruning import replay as _replay  # noqa: F401  (registers the replayers for load_model)
from slimkit.pruning.api import PRUNE, prune
from slimkit.pruning.attention import AttentionPruning
from slimkit.pruning.config import StructuredPruning, UnstructuredPruning
from slimkit.pruning.graph import ChannelGroup, PruningWarning, register_layer
from slimkit.pruning.head_attention import HeadPrunedAttention
from slimkit.pruning.importance import IMPORTANCE, ScoreContext
from slimkit.pruning.recalibrate import recalibrate_bn
from slimkit.pruning.schedule import (
    GradualPruning,
    cubic_sparsity,
    gradual,
    iterative,
    one_shot,
    step_config,
)
from slimkit.pruning.sensitivity import SensitivityResult, choose_ratios, sensitivity
from slimkit.pruning.slimming import BNSparsity
from slimkit.pruning.sparse_storage import load_sparse, save_sparse, sparse_bytes
from slimkit.pruning.structured import ChannelPruner, apply_removals
from slimkit.pruning.surgery import prune_structured
from slimkit.pruning.unstructured import (
    Mask,
    make_permanent,
    prune_unstructured,
    set_sparsity,
    sparsity,
)

__all__ = [
    "IMPORTANCE",
    "PRUNE",
    "AttentionPruning",
    "BNSparsity",
    "ChannelGroup",
    "ChannelPruner",
    "GradualPruning",
    "HeadPrunedAttention",
    "Mask",
    "PruningWarning",
    "ScoreContext",
    "SensitivityResult",
    "StructuredPruning",
    "UnstructuredPruning",
    "apply_removals",
    "choose_ratios",
    "cubic_sparsity",
    "gradual",
    "iterative",
    "load_sparse",
    "make_permanent",
    "one_shot",
    "prune",
    "prune_structured",
    "prune_unstructured",
    "recalibrate_bn",
    "register_layer",
    "save_sparse",
    "sensitivity",
    "set_sparsity",
    "sparse_bytes",
    "sparsity",
    "step_config",
]
