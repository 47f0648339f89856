"""``nn.MultiheadAttention`` with fewer heads of the same size.

``nn.MultiheadAttention`` computes ``num_heads`` heads of ``embed_dim / num_heads`` channels
and ties their total to the model width ``embed_dim``, so it cannot hold 3 of its 4 heads.
:class:`HeadPrunedAttention` can: the same parameters under the same names (``in_proj_weight``,
``in_proj_bias``, ``out_proj``) with ``3 * heads * head_dim`` rows in and ``heads * head_dim``
columns out, the same call signature and the same masks, so it drops into an
``nn.TransformerEncoderLayer`` in place of the original. It reports ``_qkv_same_embed_dim =
False``, which keeps PyTorch's fused encoder fast path (written for the full width) away from it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slimkit.errors import ModelError


class HeadPrunedAttention(nn.Module):
    """Self- or cross-attention of ``num_heads`` heads of ``head_dim`` channels over a model of
    width ``embed_dim``; called like ``nn.MultiheadAttention``.

    >>> attn = HeadPrunedAttention(8, 1, 4, batch_first=True)
    >>> out, weights = attn(torch.zeros(2, 3, 8), torch.zeros(2, 3, 8), torch.zeros(2, 3, 8))
    >>> tuple(out.shape), tuple(weights.shape)
    ((2, 3, 8), (2, 3, 3))
    """

    _qkv_same_embed_dim = False  # not nn.MultiheadAttention's layout: no fused fast path

    def __init__(self, embed_dim: int, num_heads: int, head_dim: int, *, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = False) -> None:
        super().__init__()
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, head_dim
        self.dropout, self.batch_first = dropout, batch_first
        inner = num_heads * head_dim
        self.in_proj_weight = nn.Parameter(torch.empty(3 * inner, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * inner)) if bias else None
        self.out_proj = nn.Linear(inner, embed_dim, bias=bias)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def _mask(self, attn_mask: Tensor | None, key_padding_mask: Tensor | None, n: int, lq: int, lk: int,
              dtype: torch.dtype, is_causal: bool) -> Tensor | None:
        """One additive float mask broadcastable to (N, heads, Lq, Lk), as nn.MultiheadAttention reads them."""
        mask = None
        if attn_mask is None and is_causal:
            attn_mask = torch.ones(lq, lk, dtype=torch.bool).triu(1)
        if attn_mask is not None:
            mask = _additive(attn_mask, dtype)
            if mask.dim() == 3:
                if mask.shape[0] != n * self.num_heads:
                    raise ModelError(f"a 3-D attn_mask must have batch * num_heads = {n * self.num_heads} rows "
                                     f"(this attention kept {self.num_heads} heads), got {mask.shape[0]}")
                mask = mask.view(n, self.num_heads, lq, lk)
        if key_padding_mask is not None:
            padding = _additive(key_padding_mask, dtype).view(n, 1, 1, lk)
            mask = padding if mask is None else mask + padding
        return mask

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = True, attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        batched = query.dim() == 3
        if not batched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        if not self.batch_first or not batched:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        n, lq, lk = query.shape[0], query.shape[1], key.shape[1]
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None, None, None)
        h, d = self.num_heads, self.head_dim
        q = F.linear(query, w_q, b_q).view(n, lq, h, d).transpose(1, 2)
        k = F.linear(key, w_k, b_k).view(n, lk, h, d).transpose(1, 2)
        v = F.linear(value, w_v, b_v).view(n, lk, h, d).transpose(1, 2)
        mask = self._mask(attn_mask, key_padding_mask, n, lq, lk, q.dtype, is_causal)
        dropout = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = q @ k.transpose(-2, -1) * d ** -0.5
            probs = torch.softmax(scores if mask is None else scores + mask, dim=-1)
            out = F.dropout(probs, dropout, self.training) @ v
            weights = probs.mean(1) if average_attn_weights else probs
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        out = self.out_proj(out.transpose(1, 2).reshape(n, lq, h * d))
        if not self.batch_first or not batched:
            out = out.transpose(0, 1)
        if not batched:
            out = out.squeeze(1)
            weights = weights.squeeze(0) if weights is not None else None
        return out, weights

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, head_dim={self.head_dim}, "
                f"batch_first={self.batch_first}")


def _additive(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """A boolean mask (True = do not attend) or a float one, as an additive float mask."""
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    return mask.to(dtype)


def without_heads(module: nn.Module, kept: Sequence[int]) -> HeadPrunedAttention:
    """A :class:`HeadPrunedAttention` holding heads ``kept`` of ``module`` (an ``nn.MultiheadAttention``
    or a ``HeadPrunedAttention``), with their weights."""
    h, d = module.num_heads, module.head_dim
    rows = torch.as_tensor([i * d + c for i in kept for c in range(d)], dtype=torch.long)
    inner = h * d
    index = torch.cat([rows, rows + inner, rows + 2 * inner]).to(module.in_proj_weight.device)
    bias = module.in_proj_bias is not None
    new = HeadPrunedAttention(module.embed_dim, len(kept), d, dropout=module.dropout, bias=bias,
                              batch_first=module.batch_first).to(module.in_proj_weight.device,
                                                                 module.in_proj_weight.dtype)
    with torch.no_grad():
        new.in_proj_weight.copy_(module.in_proj_weight.index_select(0, index))
        if bias:
            new.in_proj_bias.copy_(module.in_proj_bias.index_select(0, index))
        new.out_proj.weight.copy_(module.out_proj.weight.index_select(1, index[: len(rows)]))
        if module.out_proj.bias is not None:
            new.out_proj.bias.copy_(module.out_proj.bias)
    new.train(module.training)
    return new
