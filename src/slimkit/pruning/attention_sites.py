"""Where a transformer's heads, feed-forward neurons and layers are, and how to cut them whole.

Three kinds of attention are recognized by their attributes, never by importing their library:

- ``hf``: Hugging Face's BERT/RoBERTa/ViT pattern, a module with ``num_attention_heads``,
  ``attention_head_size`` and ``query``/``key``/``value`` Linears, its output projection being
  the sibling ``output.dense``;
- ``hf``: the newer pattern (DeiT, Llama-like), ``num_attention_heads``, ``head_dim`` and
  ``q_proj``/``k_proj``/``v_proj``/``o_proj`` (grouped key/value heads are refused);
- ``mha``: ``nn.MultiheadAttention`` (packed ``in_proj_weight``, ``out_proj``), and slimkit's
  :class:`~slimkit.pruning.head_attention.HeadPrunedAttention` that replaces it once it has
  fewer heads (``nn.MultiheadAttention`` ties its inner width to the model width, so it cannot
  hold fewer heads of the same size).

Feed-forward blocks are the Linear pairs :data:`FFN_PAIRS` names inside a layer; layer stacks
are the ``nn.ModuleList`` whose entries hold the attention sites (``bert.encoder.layer``,
``deit.layers``, ``nn.TransformerEncoder.layers``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from slimkit.errors import ModelError

#: ``(up, down)`` Linear pairs of a feed-forward block, relative to the layer holding them.
FFN_PAIRS = (("intermediate.dense", "output.dense"), ("mlp.fc1", "mlp.fc2"), ("linear1", "linear2"),
             ("mlp.up_proj", "mlp.down_proj"))
#: ``(query, key, value, output)`` names of Hugging Face attention projections; an output name
#: starting with ``..`` is a sibling of the attention module.
HF_PROJECTIONS = (("query", "key", "value", "..output.dense"), ("q_proj", "k_proj", "v_proj", "o_proj"))


@dataclass
class HeadSite:
    """One attention module: ``heads`` heads of ``head_size`` channels each. ``projections`` are
    the paths of the q, k, v Linears (``hf``) and ``out`` the path of the output projection,
    whose input columns are the heads side by side."""

    name: str
    kind: str
    heads: int
    head_size: int
    projections: tuple[str, ...]
    out: str
    stack: str | None = None
    layer: int | None = None


@dataclass
class FFNSite:
    """A feed-forward block of layer ``name``: ``up`` widens to ``width`` neurons, ``down`` narrows back."""

    name: str
    up: str
    down: str
    width: int
    stack: str | None = None
    layer: int | None = None


def _linear(model: nn.Module, path: str) -> nn.Linear | None:
    try:
        found = model.get_submodule(path)
    except AttributeError:
        return None
    return found if isinstance(found, nn.Linear) else None


def _resolve(name: str, relative: str) -> str:
    if relative.startswith(".."):
        parent = name.rsplit(".", 1)[0] if "." in name else ""
        return f"{parent}.{relative[2:]}" if parent else relative[2:]
    return f"{name}.{relative}"


def _hf_site(model: nn.Module, name: str, module: nn.Module) -> HeadSite | None:
    heads = getattr(module, "num_attention_heads", None)
    size = getattr(module, "attention_head_size", getattr(module, "head_dim", None))
    if not isinstance(heads, int) or not isinstance(size, int):
        return None
    for q, k, v, out in HF_PROJECTIONS:
        paths = tuple(_resolve(name, p) for p in (q, k, v, out))
        layers = [_linear(model, p) for p in paths]
        if any(layer is None for layer in layers):
            continue
        kv_heads = getattr(module, "num_key_value_heads", heads)
        if kv_heads != heads:
            raise ModelError(f"attention '{name}' groups its keys and values ({kv_heads} heads for {heads} query heads); "
                             "removing heads from it is not supported", hint=f"exclude=['{name}']")
        if any(layer.out_features != heads * size for layer in layers[:3]) or layers[3].in_features != heads * size:
            raise ModelError(f"attention '{name}' says {heads} heads of {size} channels, but its projections are "
                             f"{[layer.out_features for layer in layers[:3]]} wide",
                             hint="the module's head attributes and its weights disagree")
        return HeadSite(name, "hf", heads, size, paths[:3], paths[3])
    return None


def find_heads(model: nn.Module) -> list[HeadSite]:
    """Every attention module of ``model`` whose heads can be removed, in module order."""
    from slimkit.pruning.head_attention import HeadPrunedAttention

    sites = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.MultiheadAttention, HeadPrunedAttention)):
            check_mha(name, module)
            sites.append(HeadSite(name, "mha", module.num_heads, module.head_dim, (), f"{name}.out_proj"))
            continue
        site = _hf_site(model, name, module)
        if site is not None:
            sites.append(site)
    return _placed(model, sites)


def check_mha(name: str, module: nn.Module) -> None:
    """Refuse the ``nn.MultiheadAttention`` variants whose heads cannot be cut whole here."""
    problems = [why for why, bad in (
        ("separate key/value widths (kdim/vdim)", not getattr(module, "_qkv_same_embed_dim", True)
         and isinstance(module, nn.MultiheadAttention)),
        ("bias_k/bias_v", getattr(module, "bias_k", None) is not None),
        ("add_zero_attn", getattr(module, "add_zero_attn", False))) if bad]
    if problems:
        raise ModelError(f"attention '{name}' uses {', '.join(problems)}; removing its heads is not supported",
                         hint=f"leave it whole with exclude=['{name}']")


def find_ffns(model: nn.Module) -> list[FFNSite]:
    """Every feed-forward block (a pair from :data:`FFN_PAIRS` inside a layer that has attention)."""
    stacks = find_stacks(model)
    sites = []
    for stack, layers in stacks.items():
        for i, layer in enumerate(layers):
            base = f"{stack}.{i}"
            for up_name, down_name in FFN_PAIRS:
                up, down = _linear(layer, up_name), _linear(layer, down_name)
                if up is not None and down is not None and up.out_features == down.in_features:
                    sites.append(FFNSite(base, f"{base}.{up_name}", f"{base}.{down_name}", up.out_features, stack, i))
                    break
    return sites


def find_stacks(model: nn.Module) -> dict[str, nn.ModuleList]:
    """The layer stacks: ``nn.ModuleList``\\ s whose every entry holds attention."""
    from slimkit.pruning.head_attention import HeadPrunedAttention

    found = {}
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or not len(module):
            continue
        if all(any(isinstance(m, (nn.MultiheadAttention, HeadPrunedAttention)) or _is_hf_attention(m)
                   for m in layer.modules()) for layer in module):
            found[name] = module
    return found


def _is_hf_attention(module: nn.Module) -> bool:
    return isinstance(getattr(module, "num_attention_heads", None), int) and (
        isinstance(getattr(module, "attention_head_size", None), int) or isinstance(getattr(module, "head_dim", None), int))


def _placed(model: nn.Module, sites: list[HeadSite]) -> list[HeadSite]:
    stacks = find_stacks(model)
    for site in sites:
        for stack, layers in stacks.items():
            for i in range(len(layers)):
                if site.name.startswith(f"{stack}.{i}."):
                    site.stack, site.layer = stack, i
    return sites


# ------------------------------------------------------------------------------------- surgery


def keep_linear(layer: nn.Linear, keep: Sequence[int], dim: int) -> nn.Linear:
    """A new Linear holding only the ``keep`` rows (``dim=0``: outputs) or columns (``dim=1``: inputs)."""
    index = torch.as_tensor(list(keep), dtype=torch.long, device=layer.weight.device)
    weight = layer.weight.detach().index_select(dim, index).clone()
    bias = layer.bias
    if bias is not None:
        bias = bias.detach().clone() if dim == 1 else bias.detach().index_select(0, index).clone()
    out_features, in_features = weight.shape
    new = nn.Linear(in_features, out_features, bias=bias is not None, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    new.train(layer.training)
    return new


def set_module(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, child = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def channels_of(heads: Sequence[int], size: int) -> list[int]:
    """The channel indices of ``heads`` (heads of ``size`` channels side by side)."""
    return [h * size + c for h in heads for c in range(size)]


def remove_heads(model: nn.Module, site: HeadSite, heads: Sequence[int]) -> None:
    """Remove ``heads`` (indices into the site's current heads) from ``site`` in place."""
    from slimkit.pruning.head_attention import without_heads

    drop = sorted({int(h) for h in heads})
    if not drop:
        return
    if any(not 0 <= h < site.heads for h in drop) or len(drop) >= site.heads:
        raise ModelError(f"cannot remove heads {drop} of '{site.name}': it has {site.heads} heads and must keep one",
                         hint="the plan or record does not fit this model")
    kept = [h for h in range(site.heads) if h not in drop]
    channels = channels_of(kept, site.head_size)
    module = model.get_submodule(site.name)
    if site.kind == "mha":
        set_module(model, site.name, without_heads(module, kept))
        return
    for path in site.projections:
        set_module(model, path, keep_linear(model.get_submodule(path), channels, 0))
    set_module(model, site.out, keep_linear(model.get_submodule(site.out), channels, 1))
    module.num_attention_heads = len(kept)
    for attr in ("all_head_size", "inner_dim"):
        if isinstance(getattr(module, attr, None), int):
            setattr(module, attr, len(kept) * site.head_size)


def remove_neurons(model: nn.Module, site: FFNSite, neurons: Sequence[int]) -> None:
    """Remove ``neurons`` of a feed-forward block in place (the up rows and the down columns)."""
    drop = {int(n) for n in neurons}
    if any(not 0 <= n < site.width for n in drop) or len(drop) >= site.width:
        raise ModelError(f"cannot remove neurons {sorted(drop)[:8]} of '{site.name}': it has {site.width} and must "
                         "keep one", hint="the plan or record does not fit this model")
    kept = [n for n in range(site.width) if n not in drop]
    set_module(model, site.up, keep_linear(model.get_submodule(site.up), kept, 0))
    set_module(model, site.down, keep_linear(model.get_submodule(site.down), kept, 1))


def drop_layers(model: nn.Module, stack: str, layers: Sequence[int]) -> None:
    """Remove entries ``layers`` of the layer stack ``stack`` in place, and update the depth the
    model records (``nn.TransformerEncoder.num_layers``, a Hugging Face ``config.num_hidden_layers``)."""
    modules = model.get_submodule(stack)
    drop = {int(i) for i in layers}
    if any(not 0 <= i < len(modules) for i in drop) or len(drop) >= len(modules):
        raise ModelError(f"cannot drop layers {sorted(drop)} of '{stack}': it has {len(modules)} and must keep one",
                         hint="the plan or record does not fit this model")
    kept = [layer for i, layer in enumerate(modules) if i not in drop]
    set_module(model, stack, nn.ModuleList(kept))
    for i, layer in enumerate(kept):
        for module in layer.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = i
    owner = model.get_submodule(stack.rpartition(".")[0]) if "." in stack else model
    if isinstance(getattr(owner, "num_layers", None), int):
        owner.num_layers = len(kept)
    config = getattr(model, "config", None)
    if config is not None and isinstance(getattr(config, "num_hidden_layers", None), int):
        config.num_hidden_layers = len(kept)
        pruned = getattr(config, "pruned_heads", None) or {}
        order = [i for i in range(len(modules)) if i not in drop]
        config.pruned_heads = {order.index(int(k)): v for k, v in pruned.items() if int(k) in order}
