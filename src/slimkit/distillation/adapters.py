"""Adapters that map student features onto the teacher's shape, built from the first batch.

Student and teacher layers often differ in width (and after pruning, the student's width is only
known at run time), so the projection is created from the shapes seen on the first batch rather
than declared up front.

Because ``LazyAdapter`` creates its parameters on first use, whoever builds the optimizer must
see them: call ``materialize`` (on the adapter, or ``slimkit.distillation.losses.materialize`` on a
whole loss) with one batch of features before building the optimizer. A checkpointed adapter is
rebuilt from the saved weight shapes by ``load_state_dict``, so resuming needs no extra batch.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slimkit.errors import ModelError


def match_spatial(x: Tensor, size: tuple[int, int] | Any) -> Tensor:
    """Resize the last two dims of ``x`` (N, C, H, W) to ``size``.

    Shrinking uses adaptive average pooling (it keeps every activation's contribution);
    growing uses bilinear interpolation.

    >>> import torch
    >>> match_spatial(torch.ones(1, 2, 8, 8), (4, 4)).shape
    torch.Size([1, 2, 4, 4])
    >>> match_spatial(torch.ones(1, 2, 2, 2), (4, 4)).shape
    torch.Size([1, 2, 4, 4])
    """
    size = (int(size[0]), int(size[1]))
    h, w = x.shape[-2:]
    if (h, w) == size:
        return x
    if h >= size[0] and w >= size[1]:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class LazyAdapter(nn.Module):
    """A learned projection of student features to the teacher's channels and size.

    4-D features (N, C, H, W) get a 1x1 convolution followed by ``match_spatial``; 2-D
    features (N, F) get a linear layer, and so do token features (N, L, D) (over D, for every
    one of the L tokens, which student and teacher must share). The layer is created on the
    first call (or by ``materialize``) from the shapes it sees.

    >>> import torch
    >>> adapter = LazyAdapter()
    >>> adapter.materialize(torch.zeros(2, 8, 7, 7), torch.zeros(2, 32, 14, 14))
    True
    >>> adapter(torch.zeros(2, 8, 7, 7), torch.zeros(2, 32, 14, 14)).shape
    torch.Size([2, 32, 14, 14])
    >>> LazyAdapter()(torch.zeros(2, 5, 16), torch.zeros(2, 5, 32)).shape  # tokens: (N, L, D)
    torch.Size([2, 5, 32])
    """

    proj: nn.Module | None

    def __init__(self, *, bias: bool = True) -> None:
        super().__init__()
        self.bias = bias
        self.proj = None

    @property
    def materialized(self) -> bool:
        """Whether the projection exists yet."""
        return self.proj is not None

    def materialize(self, student: Tensor, teacher: Tensor) -> bool:
        """Create the projection for these feature shapes; ``True`` if it was created now."""
        _check_ranks(student, teacher)
        s_ch, t_ch = _width(student), _width(teacher)
        if self.proj is not None:
            expected = _channels(self.proj)
            if expected != (s_ch, t_ch):
                raise ModelError(
                    f"LazyAdapter was built for {expected[0]} -> {expected[1]} channels but now sees "
                    f"{s_ch} -> {t_ch}",
                    hint="feature shapes must stay the same across batches; use one adapter per layer pair",
                )
            return False
        layer: nn.Module
        if student.dim() == 4:
            layer = nn.Conv2d(s_ch, t_ch, kernel_size=1, bias=self.bias)
        else:
            layer = nn.Linear(s_ch, t_ch, bias=self.bias)
        self.proj = layer.to(device=student.device, dtype=student.dtype)
        return True

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        """``student`` projected (and resized) to ``teacher``'s shape."""
        if self.proj is None:
            self.materialize(student, teacher)
            if self.training and torch.is_grad_enabled() and student.requires_grad:
                # An optimizer built before this call does not hold these parameters, so they
                # would silently stay at their random initial values.
                warnings.warn(
                    "LazyAdapter created its parameters inside a training step; an optimizer built "
                    "earlier will not update them. Call materialize() with one batch before "
                    "building the optimizer.",
                    stacklevel=2,
                )
        else:
            _check_ranks(student, teacher)
        assert self.proj is not None
        out = self.proj(student)
        if out.dim() == 4:
            out = match_spatial(out, teacher.shape[-2:])
        return out

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # Rebuild the projection from the saved weight shape so a fresh loss can resume from a
        # checkpoint; torch loads child modules after this hook, so the new layer gets filled.
        weight = state_dict.get(prefix + "proj.weight")
        if self.proj is None and weight is not None:
            has_bias = prefix + "proj.bias" in state_dict
            out_ch, in_ch = weight.shape[0], weight.shape[1]
            layer: nn.Module
            if weight.dim() == 4:
                layer = nn.Conv2d(in_ch, out_ch, kernel_size=1, bias=has_bias)
            else:
                layer = nn.Linear(in_ch, out_ch, bias=has_bias)
            self.proj = layer.to(device=weight.device, dtype=weight.dtype)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def extra_repr(self) -> str:
        return "" if self.proj is not None else "not materialized"


def _channels(layer: nn.Module) -> tuple[int, int]:
    if isinstance(layer, nn.Conv2d):
        return layer.in_channels, layer.out_channels
    assert isinstance(layer, nn.Linear)
    return layer.in_features, layer.out_features


def _width(feature: Tensor) -> int:
    """The axis a projection maps: channels of (N, C, H, W) and (N, F), the last of (N, L, D)."""
    return feature.shape[-1] if feature.dim() == 3 else feature.shape[1]


def _check_ranks(student: Tensor, teacher: Tensor) -> None:
    if student.dim() != teacher.dim() or student.dim() not in (2, 3, 4):
        raise ModelError(
            f"LazyAdapter maps (N, C, H, W) to (N, C, H, W), (N, L, D) to (N, L, D) or (N, F) to (N, F); "
            f"got student {tuple(student.shape)} and teacher {tuple(teacher.shape)}",
            hint="capture layers whose outputs have the same rank (e.g. both conv blocks, or both "
            "linear layers)",
        )
    if student.dim() == 3 and student.shape[1] != teacher.shape[1]:
        raise ModelError(
            f"LazyAdapter: student and teacher token features have different lengths "
            f"({tuple(student.shape)} vs {tuple(teacher.shape)})",
            hint="match layers that see the same tokens (N, L, D); only D may differ",
        )
    if student.shape[0] != teacher.shape[0]:
        raise ModelError(
            f"LazyAdapter: student and teacher batch sizes differ ({student.shape[0]} vs {teacher.shape[0]})"
        )
