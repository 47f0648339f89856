"""Weight-only int8 for embedding tables (token, position, segment embeddings).

An embedding is a lookup, not a matrix product, so int8 *kernels* do not apply: what int8 buys is
size. A transformer's token table is often its largest tensor (BERT-base: 23M of 110M
parameters). ``quantize(model, EmbeddingInt8())`` replaces every selected ``nn.Embedding`` by an
:class:`Int8Embedding` holding int8 codes with one scale per row (symmetric, per token: rows
differ widely in norm), which dequantizes only the rows it looks up. The model stays a PyTorch
model: it trains no further, but runs, saves (the int8 codes in safetensors, replayed on load),
and exports to ONNX as ``Gather`` on int8 data, so a following ``DynamicInt8`` (ONNX Runtime)
gives an artifact whose Linear layers *and* embeddings are int8.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from slimkit.errors import CheckpointError, ModelError
from slimkit.export.serialize import CHANGES, record_change, record_report
from slimkit.quantization.config import QuantConfig
from slimkit.quantization.ptq import QUANTIZE
from slimkit.select import select_modules


class EmbeddingInt8(QuantConfig):
    """Int8 weights (one symmetric scale per row) for the selected ``nn.Embedding`` layers.

    >>> EmbeddingInt8(exclude=["*.position_embeddings"]).exclude
    ['*.position_embeddings']
    """


class Int8Embedding(nn.Module):
    """An embedding table stored as int8 codes and per-row scales; looks up dequantized rows.

    >>> table = nn.Embedding(4, 3)
    >>> q = Int8Embedding.from_float(table)
    >>> ids = torch.tensor([[0, 3]])
    >>> bool((q(ids) - table(ids)).abs().max() <= table.weight.abs().max() / 127)
    True
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.register_buffer("codes", torch.zeros(num_embeddings, embedding_dim, dtype=torch.int8))
        self.register_buffer("scale", torch.ones(num_embeddings))

    @classmethod
    def from_float(cls, embedding: nn.Embedding) -> Int8Embedding:
        weight = embedding.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp_min(1e-12) / 127.0
        module = cls(embedding.num_embeddings, embedding.embedding_dim, embedding.padding_idx)
        module.codes.copy_(torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8))
        module.scale.copy_(scale)
        return module.to(embedding.weight.device)

    @property
    def weight(self) -> Tensor:
        """The dequantized table (for code that reads ``.weight``: tied heads, SVD, reports)."""
        return self.codes.float() * self.scale[:, None]

    def forward(self, ids: Tensor) -> Tensor:
        return self.codes[ids].float() * self.scale[ids].unsqueeze(-1)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, int8 per-row"


def _embeddings(model: nn.Module, config: EmbeddingInt8) -> list[str]:
    return list(select_modules(model, config.include, exclude=config.exclude, types=(nn.Embedding,)))


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


@QUANTIZE.register(EmbeddingInt8)
def embedding_int8(model: nn.Module, config: EmbeddingInt8, loader: Iterable[Any] | None, example: Any) -> nn.Module:
    """A copy of ``model`` whose selected embeddings are :class:`Int8Embedding`."""
    names = _embeddings(model, config)
    if not names:
        raise ModelError(f"no nn.Embedding of {type(model).__name__} matches include={config.include} "
                         f"exclude={config.exclude}", hint="EmbeddingInt8 quantizes embedding tables; check the globs")
    result = copy.deepcopy(model)
    before = sum(result.get_submodule(n).weight.numel() * 4 for n in names)
    for name in names:
        _replace(result, name, Int8Embedding.from_float(result.get_submodule(name)))
    after = sum(m.codes.numel() + m.scale.numel() * 4 for n in names
                for m in [result.get_submodule(n)])
    record_change(result, "int8_embeddings", layers=names)
    record_report(result, "quantize", {"scheme": config.to_dict(), "kind": "embedding-int8", "quantized_layers": names,
                                       "float_layers": {}, "embedding_bytes": [before, after]})
    return result


def replay_embeddings(model: nn.Module, change: dict[str, Any]) -> nn.Module:
    """Loading: the recorded embeddings become empty Int8Embeddings; the saved codes fill them."""
    names = change.get("layers")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise CheckpointError("the int8_embeddings record's 'layers' is not a list of layer names",
                              hint="the model.json was edited or truncated")
    for name in names:
        try:
            table = model.get_submodule(name)
        except AttributeError:
            raise CheckpointError(f"the int8_embeddings record names '{name}', which the model does not have") from None
        if not isinstance(table, nn.Embedding):
            raise CheckpointError(f"the int8_embeddings record names '{name}', a {type(table).__name__}")
        _replace(model, name, Int8Embedding(table.num_embeddings, table.embedding_dim, table.padding_idx))
    return model


if "int8_embeddings" not in CHANGES:
    CHANGES.add("int8_embeddings", replay_embeddings, doc="embedding tables as int8 codes (slimkit.quantization)")
