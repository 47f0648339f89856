"""Layer mappings between a transformer student and its teacher, the loss specs they give, and
a student initialized from teacher layers.

- :func:`layer_map`: which teacher layer each student layer learns from: ``"uniform"`` (student
  layer ``i`` of ``S`` to the last layer of the ``i``-th of ``S`` equal blocks of the teacher's
  ``T``, as TinyBERT's ``g(m) = m T / S``), ``"first"`` (the first layer of each block:
  DistilBERT's every other layer), ``"last"`` (the teacher's last ``S`` layers), or a list.
- :func:`transformer_losses`: the ``DistillConfig.losses`` specs for KD on the logits plus
  hidden-state, attention-map and attention-relation terms over the mapped layers, with the
  module paths of both models filled in.
- :func:`init_from_layers`: load the teacher's weights into a shallower student of the same
  width: its layers from the mapped teacher layers, everything else (embeddings, final norm,
  pooler, classifier) by name.

>>> layer_map(2, 4), layer_map(2, 4, "first"), layer_map(2, 4, "last")
([1, 3], [0, 2], [2, 3])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from slimkit.errors import ConfigError
from slimkit.export.serialize import record_report
from slimkit.pruning.attention_sites import HeadSite, find_heads, find_stacks

STRATEGIES = ("uniform", "first", "last")


def layer_map(student: int, teacher: int, strategy: str | Sequence[int] = "uniform") -> list[int]:
    """The teacher layer index for each of ``student`` layers (see the module docstring).

    >>> layer_map(3, 6, [0, 1, 5])
    [0, 1, 5]
    >>> layer_map(3, 2)
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: layer map: a 3-layer student cannot map onto a 2-layer teacher
      hint: give an explicit list of teacher layers, one per student layer
    """
    if not isinstance(strategy, str):
        chosen = [int(i) for i in strategy]
        if len(chosen) != student or any(not 0 <= i < teacher for i in chosen):
            raise ConfigError(f"layer map {chosen}: need {student} teacher layer indices in 0..{teacher - 1}")
        return chosen
    if strategy not in STRATEGIES:
        raise ConfigError(f"layer map: unknown strategy {strategy!r}", hint=f"use one of {', '.join(STRATEGIES)} or a list")
    if student > teacher:
        raise ConfigError(f"layer map: a {student}-layer student cannot map onto a {teacher}-layer teacher",
                          hint="give an explicit list of teacher layers, one per student layer")
    if strategy == "last":
        return list(range(teacher - student, teacher))
    if strategy == "first":
        return [i * teacher // student for i in range(student)]
    return [(i + 1) * teacher // student - 1 for i in range(student)]


def stack_of(model: nn.Module, role: str) -> tuple[str, int]:
    """The path and depth of ``model``'s (one) layer stack."""
    stacks = find_stacks(model)
    if len(stacks) != 1:
        found = ", ".join(stacks) or "none"
        raise ConfigError(f"the {role} ({type(model).__name__}) needs exactly one stack of transformer layers, found {found}",
                          hint="transformer losses work on encoders: nn.TransformerEncoder or Hugging Face BERT/ViT")
    name, layers = next(iter(stacks.items()))
    return name, len(layers)


def _attention_in(model: nn.Module, stack: str, layer: int, role: str) -> HeadSite:
    for site in find_heads(model):
        if site.stack == stack and site.layer == layer:
            if site.kind != "hf":
                raise ConfigError(f"the {role}'s attention '{site.name}' computes its queries and keys inside one "
                                  "module (nn.MultiheadAttention), so they cannot be captured",
                                  hint="use hidden-state and relation terms, which read layer outputs")
            return site
    raise ConfigError(f"the {role} has no attention in layer {layer} of '{stack}'")


def transformer_losses(student: nn.Module, teacher: nn.Module, *, kd: float = 1.0, temperature: float = 4.0,
                       ce: float = 0.0, hidden: float = 0.0, attention: float = 0.0, relation: float = 0.0,
                       relation_heads: int | None = None, mapping: str | Sequence[int] = "uniform") -> list[dict[str, Any]]:
    """Loss specs (for ``DistillConfig(losses=...)``) distilling ``teacher`` into ``student``.

    ``kd`` and ``ce`` weigh Hinton KD and cross-entropy on the logits; ``hidden`` the hidden
    states of every student layer against its mapped teacher layer (``mapping``; adapters
    learn across widths); ``attention`` their attention distributions (Hugging Face attention
    only, same head counts); ``relation`` MiniLM-v2's query, key and value relations of the last
    layers (any widths and head counts; ``relation_heads`` relation heads, default the
    student's head count). Layer terms share their weight equally.
    """
    specs: list[dict[str, Any]] = []
    if kd:
        specs.append({"name": "kd", "weight": kd, "temperature": temperature})
    if ce:
        specs.append({"name": "ce", "weight": ce})
    if not (hidden or attention or relation):
        return specs
    s_stack, s_depth = stack_of(student, "student")
    t_stack, t_depth = stack_of(teacher, "teacher")
    pairs = list(enumerate(layer_map(s_depth, t_depth, mapping)))
    if hidden:
        specs += [{"name": "hidden", "label": f"hidden_{i}", "weight": hidden / len(pairs),
                   "student": f"{s_stack}.{i}", "teacher": f"{t_stack}.{j}"} for i, j in pairs]
    if attention:
        for i, j in pairs:
            s_site, t_site = _attention_in(student, s_stack, i, "student"), _attention_in(teacher, t_stack, j, "teacher")
            specs.append({"name": "attention", "label": f"attention_{i}", "weight": attention / len(pairs),
                          "student_query": s_site.projections[0], "student_key": s_site.projections[1],
                          "teacher_query": t_site.projections[0], "teacher_key": t_site.projections[1],
                          "heads": s_site.heads, "teacher_heads": t_site.heads})
    if relation:
        i, j = pairs[-1]
        s_site, t_site = _attention_in(student, s_stack, i, "student"), _attention_in(teacher, t_stack, j, "teacher")
        heads = relation_heads or s_site.heads
        for part, s_path, t_path in zip("qkv", s_site.projections, t_site.projections):
            specs.append({"name": "relation", "label": f"relation_{part}", "weight": relation / 3,
                          "student": s_path, "teacher": t_path, "heads": heads})
    return specs


def init_from_layers(student: nn.Module, teacher: nn.Module, mapping: str | Sequence[int] = "first") -> nn.Module:
    """Load ``teacher``'s weights into ``student`` (in place): student layer ``i`` from teacher
    layer ``layer_map(...)[i]`` (``"first"``: DistilBERT's every other layer), every other
    tensor by name. Both must have the same width; on a mismatch nothing is loaded and a
    ConfigError names the tensor. Recorded as ``report_of(student, "init")``.
    """
    s_stack, s_depth = stack_of(student, "student")
    t_stack, t_depth = stack_of(teacher, "teacher")
    chosen = layer_map(s_depth, t_depth, mapping)
    source = teacher.state_dict()
    wanted = student.state_dict()
    loaded: dict[str, torch.Tensor] = {}
    for key, value in wanted.items():
        origin = key
        prefix = f"{s_stack}."
        if key.startswith(prefix):
            index, _, rest = key[len(prefix):].partition(".")
            origin = f"{t_stack}.{chosen[int(index)]}.{rest}"
        found = source.get(origin)
        if found is None or found.shape != value.shape:
            what = "missing in the teacher" if found is None else f"{tuple(found.shape)} in the teacher"
            raise ConfigError(f"init from teacher layers: '{key}' ({tuple(value.shape)}) is {what} as '{origin}'",
                              hint="the student must be the teacher's architecture with fewer layers (same width)")
        loaded[key] = found.to(value.device, value.dtype)
    student.load_state_dict(loaded)
    record_report(student, "init", {"from": "teacher layers", "teacher_layers": chosen, "mapping":
                                    mapping if isinstance(mapping, str) else list(mapping)})
    return student


def shallow_student(teacher: nn.Module, depth: float = 0.5, mapping: str | Sequence[int] = "first") -> nn.Module:
    """DistilBERT's student: the teacher's architecture (``derive_student``) with ``depth`` times
    its layers, initialized from the teacher's layers (:func:`init_from_layers`).

    >>> from slimkit.models import build_model
    >>> teacher = build_model("hf_vit", input_size=8, patch_size=4, hidden_size=8, layers=4, heads=2)
    >>> student = shallow_student(teacher)
    >>> student.config.num_hidden_layers, torch.equal(student.vit.layers[1].mlp.fc2.weight,
    ...                                               teacher.vit.layers[2].mlp.fc2.weight)
    (2, True)
    """
    from slimkit.distillation.derive import derive_student
    from slimkit.models import build_model

    name, kwargs = derive_student(teacher, width=1.0, depth=depth)
    return init_from_layers(build_model(name, **kwargs), teacher, mapping)
