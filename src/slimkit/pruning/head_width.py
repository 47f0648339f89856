"""The refusal shared by every attention cut: a width that is not a whole number of heads."""

from __future__ import annotations

from slimkit.errors import ModelError


def check_head_width(name: str, width: int, head_size: int) -> None:
    """Refuse an attention width that is not a multiple of the head size (raised before any change).

    >>> check_head_width("enc.0.attention.self.query", 24, 16)
    Traceback (most recent call last):
    ...
    slimkit.errors.ModelError: attention 'enc.0.attention.self.query' would keep 24 channels, which is not a multiple of its head size 16 (1.50 heads); nothing was changed
      hint: remove whole heads with AttentionPruning(heads=...), or exclude the attention
    """
    if width <= 0 or width % head_size:
        raise ModelError(f"attention '{name}' would keep {width} channels, which is not a multiple of its head size "
                         f"{head_size} ({width / head_size:.2f} heads); nothing was changed",
                         hint="remove whole heads with AttentionPruning(heads=...), or exclude the attention")
