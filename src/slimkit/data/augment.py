"""Light training augmentation applied to whole batches: random shifts and optional flips.

Augmenting a collated batch with a few tensor ops is far cheaper than one sample at a time.
Randomness comes from torch's global generator (or one passed in), so the Trainer's
``torch.manual_seed(seed + epoch)`` makes augmented epochs reproducible; DataLoader workers
are seeded from that same generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import default_collate


class Augment:
    """Shift each image by up to ``max_shift`` pixels (edges replicated); flip half if ``hflip``.

    Works on a batch ``x`` of shape (B, C, H, W) and returns a new tensor of the same shape.

    >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> _ = torch.manual_seed(0); a = Augment(max_shift=1)(x)
    >>> _ = torch.manual_seed(0); b = Augment(max_shift=1)(x)
    >>> a.shape, torch.equal(a, b)
    (torch.Size([1, 1, 4, 4]), True)
    """

    def __init__(self, max_shift: int = 2, hflip: bool = False) -> None:
        if max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {max_shift}")
        self.max_shift = max_shift
        self.hflip = hflip

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"Augment expects a (B, C, H, W) batch, got shape {tuple(x.shape)}")
        b, _, h, w = x.shape
        out = x
        s = self.max_shift
        if s > 0:
            # Replicated edges are background for MNIST-like images, whatever the normalization.
            padded = F.pad(x, (s, s, s, s), mode="replicate")
            dy = torch.randint(0, 2 * s + 1, (b,), generator=generator)
            dx = torch.randint(0, 2 * s + 1, (b,), generator=generator)
            rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None]  # (B,1,H,1)
            cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :]  # (B,1,1,W)
            batch = torch.arange(b)[:, None, None, None]
            channels = torch.arange(x.shape[1])[None, :, None, None]
            out = padded[batch, channels, rows, cols]
        if self.hflip:
            flip = torch.rand(b, generator=generator) < 0.5
            out = torch.where(flip[:, None, None, None], out.flip(-1), out)
        return out

    def __repr__(self) -> str:
        return f"Augment(max_shift={self.max_shift}, hflip={self.hflip})"


class AugmentCollate:
    """A DataLoader ``collate_fn``: default collation, then :class:`Augment` on the inputs.

    Batches may carry extra items after (x, y); only the first is augmented. A plain class
    (not a closure) so DataLoader workers can pickle it.
    """

    def __init__(self, augment: Augment) -> None:
        self.augment = augment

    def __call__(self, samples: Sequence[Any]) -> Any:
        batch = default_collate(samples)
        if isinstance(batch, (list, tuple)):
            return type(batch)([self.augment(batch[0]), *batch[1:]])
        return self.augment(batch)
