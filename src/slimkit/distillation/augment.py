"""Batch-level augmentation for distillation: one augmented batch that teacher and student both see.

Function matching (Beyer et al. 2022, "Knowledge distillation: A good teacher is patient and
consistent") distills on aggressively augmented inputs, and the teacher must see *exactly* the
student's augmented batch: random shifts, flips, mixup and cutmix. ``Augmentation`` says which;
``augmented(loader, augmentation, num_classes)`` wraps a train loader so every batch it yields is
augmented once, before the Trainer calls the student, and the distillation loss then runs the
teacher on that same batch. With mixing, labels become mixed one-hot probabilities ``(N, C)``,
which cross-entropy (and the Trainer's accuracy, by arg-max) read directly.

Only floating-point input tensors are changed (``slimkit.modelio.map_floats``): token IDs and
masks are never mixed or shifted. Shifts, flips and cutmix change the float image tensors
``(N, C, H, W)``; mixup mixes every float tensor (cutmix mixes the other float tensors in the
proportion of the image it keeps). Randomness comes from torch's global generator, which the
Trainer seeds every epoch, so augmented runs are reproducible and resume exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor

from slimkit.config import Config
from slimkit.errors import DataError
from slimkit.modelio import LABEL_KEYS, batch_size, has_float, map_floats, split, tensors

log = logging.getLogger("slimkit.distillation")


class Augmentation(Config):
    """Which batch augmentations distillation applies (all off by default).

    - ``shift``: translate each image by up to ``shift`` pixels (edges replicated);
    - ``hflip``: mirror half the images left-right (off: it changes what text or digits mean);
    - ``mixup`` / ``cutmix``: the Beta(alpha, alpha) parameter of mixup (Zhang et al. 2018) /
      cutmix (Yun et al. 2019); 0 turns it off. With both on, each batch uses one of them, chosen
      at random (as timm does);
    - ``mix_prob``: the share of batches that are mixed at all.

    >>> Augmentation(shift=2, mixup=1.0).active
    True
    >>> Augmentation().active
    False
    """

    shift: int = Field(0, ge=0, le=64)
    hflip: bool = False
    mixup: float = Field(0.0, ge=0)
    cutmix: float = Field(0.0, ge=0)
    mix_prob: float = Field(1.0, ge=0, le=1)

    @model_validator(mode="after")
    def _mixing_needs_an_alpha(self) -> Augmentation:
        if self.mix_prob < 1.0 and not (self.mixup or self.cutmix):
            raise ValueError("mix_prob is set but neither mixup nor cutmix is on")
        return self

    @property
    def active(self) -> bool:
        return bool(self.shift or self.hflip or self.mixup or self.cutmix)

    @property
    def mixes(self) -> bool:
        return bool(self.mixup or self.cutmix) and self.mix_prob > 0


def shift_images(x: Tensor, max_shift: int, offsets: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Translate each image of ``x`` (N, C, H, W) by up to ``max_shift`` pixels each way;
    ``offsets`` (dy, dx in ``[0, 2 * max_shift]``) fixes the shifts, e.g. to move several inputs alike.

    >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> shift_images(x, 1, (torch.tensor([1]), torch.tensor([2])))[0, 0, 0].tolist()  # one pixel left
    [1.0, 2.0, 3.0, 3.0]
    """
    if max_shift <= 0:
        return x
    n, c, h, w = x.shape
    s = max_shift
    dy, dx = offsets if offsets is not None else random_offsets(n, s, x.device)
    padded = F.pad(x, (s, s, s, s), mode="replicate")  # MNIST-like backgrounds: edges are background
    rows = (dy.to(x.device)[:, None] + torch.arange(h, device=x.device)[None, :])[:, None, :, None]
    cols = (dx.to(x.device)[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, None, :]
    index_n = torch.arange(n, device=x.device)[:, None, None, None]
    index_c = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[index_n, index_c, rows, cols]


def random_offsets(n: int, max_shift: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Per-sample (dy, dx) offsets for :func:`shift_images`, drawn from torch's global generator."""
    high = 2 * max_shift + 1
    return torch.randint(0, high, (n,)).to(device), torch.randint(0, high, (n,)).to(device)


def flip_images(x: Tensor, flip: Tensor | None = None) -> Tensor:
    """Mirror the images of ``x`` where ``flip`` (N booleans; default: a random half) is set."""
    flip = torch.rand(x.shape[0]) < 0.5 if flip is None else flip
    return torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)


def cut_box(h: int, w: int, lam: float) -> tuple[int, int, int, int]:
    """A random box covering about ``1 - lam`` of an ``h`` x ``w`` image (cutmix): (y0, y1, x0, x1).

    >>> _ = torch.manual_seed(0)
    >>> y0, y1, x0, x1 = cut_box(28, 28, 0.75)
    >>> 0 <= y0 <= y1 <= 28 and 0 <= x0 <= x1 <= 28
    True
    """
    cut_h, cut_w = int(h * (1 - lam) ** 0.5), int(w * (1 - lam) ** 0.5)
    cy, cx = int(torch.randint(0, h, (1,))), int(torch.randint(0, w, (1,)))
    return max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h), max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)


class BatchAugmenter:
    """Applies an :class:`Augmentation` to loader batches (see the module docstring).

    ``num_classes`` turns integer labels into mixed one-hot probabilities when a batch is mixed.

    >>> aug = BatchAugmenter(Augmentation(mixup=1.0), num_classes=3)
    >>> _ = torch.manual_seed(0)
    >>> x, y = aug((torch.randn(4, 1, 6, 6), torch.tensor([0, 1, 2, 0])))
    >>> y.shape, bool(torch.allclose(y.sum(1), torch.ones(4)))
    (torch.Size([4, 3]), True)
    """

    def __init__(self, augmentation: Augmentation, num_classes: int | None = None) -> None:
        self.augmentation = augmentation
        self.num_classes = num_classes
        self.skipped: str | None = None

    def __call__(self, batch: Any) -> Any:
        aug = self.augmentation
        parts = split(batch)
        inputs, targets = parts.inputs, parts.targets
        if not aug.active:
            return batch
        if not has_float(inputs):
            self._skip("the inputs have no floating-point tensor (token IDs are never augmented)")
            return batch
        images = any(t.dim() == 4 for _, t in tensors(inputs) if t.is_floating_point())
        if (aug.shift or aug.hflip or aug.cutmix) and not images:
            self._skip("shifts, flips and cutmix need image batches (N, C, H, W); only mixup applies")
        if images:
            n = batch_size(inputs)  # one draw per sample, shared by every image input
            if aug.shift:
                offsets = random_offsets(n, aug.shift)
                inputs = on_images(inputs, lambda t: shift_images(t, aug.shift, offsets))
            if aug.hflip:
                flip = torch.rand(n) < 0.5
                inputs = on_images(inputs, lambda t: flip_images(t, flip))
        mode = self._mix_mode(images)
        if mode is not None and targets is not None:
            inputs, targets = self._mix(inputs, targets, mode)
        return rebuild(batch, inputs, targets)

    def _mix_mode(self, images: bool) -> str | None:
        aug = self.augmentation
        if not aug.mixes or float(torch.rand(1)) >= aug.mix_prob:
            return None
        modes = [m for m, alpha in (("mixup", aug.mixup), ("cutmix", aug.cutmix if images else 0.0)) if alpha > 0]
        if not modes:
            return None
        return modes[int(torch.randint(0, len(modes), (1,)))] if len(modes) > 1 else modes[0]

    def _mix(self, inputs: Any, targets: Tensor, mode: str) -> tuple[Any, Tensor]:
        n = int(targets.shape[0])
        perm = torch.randperm(n).to(targets.device)
        alpha = self.augmentation.mixup if mode == "mixup" else self.augmentation.cutmix
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        if mode == "mixup":
            inputs = map_floats(inputs, lambda t: lam * t + (1 - lam) * t[perm])
        else:
            h, w = next(t for _, t in tensors(inputs) if t.is_floating_point() and t.dim() == 4).shape[-2:]
            y0, y1, x0, x1 = cut_box(h, w, lam)
            lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)  # the share actually kept

            def paste(t: Tensor) -> Tensor:
                if t.dim() != 4:  # other float inputs (a scale, a mask) mix in the kept proportion
                    return lam * t + (1 - lam) * t[perm]
                out = t.clone()
                out[..., y0:y1, x0:x1] = t[perm][..., y0:y1, x0:x1]
                return out

            inputs = map_floats(inputs, paste)
        soft = self._probabilities(targets)
        return inputs, lam * soft + (1 - lam) * soft[perm]

    def _probabilities(self, targets: Tensor) -> Tensor:
        if targets.is_floating_point() and targets.dim() == 2:
            return targets
        if self.num_classes is None:
            raise DataError("mixup/cutmix need the number of classes to mix integer labels",
                            hint="pass num_classes to BatchAugmenter (distill finds it from the student's logits)")
        if targets.dim() != 1:
            raise DataError(f"mixup/cutmix mix class labels of shape (N,), got {tuple(targets.shape)}",
                            hint="turn mixup and cutmix off for this task")
        return F.one_hot(targets.long(), self.num_classes).float()

    def _skip(self, why: str) -> None:
        if self.skipped is None:
            log.warning("augmentation partly skipped: %s", why)
            self.skipped = why


def on_images(inputs: Any, fn: Any) -> Any:
    """``fn`` applied to the float image tensors (N, C, H, W) of ``inputs`` only."""
    return map_floats(inputs, lambda t: fn(t) if t.dim() == 4 else t)


def rebuild(batch: Any, inputs: Any, targets: Tensor | None) -> Any:
    """``batch`` with its inputs and targets replaced, in the same structure ``modelio.split`` read.

    >>> rebuild((torch.zeros(1), torch.tensor([1]), "i"), torch.ones(1), torch.tensor([2]))
    (tensor([1.]), tensor([2]), 'i')
    """
    if isinstance(batch, Tensor):
        return inputs
    if isinstance(batch, Mapping):
        key = next((k for k in LABEL_KEYS if k in batch), None)
        out = dict(inputs)
        if key is not None:
            out[key] = targets
        return out
    if isinstance(batch, (tuple, list)):
        rest = tuple(batch[2:])
        return (inputs, *(() if len(batch) < 2 else (targets,)), *rest)
    return batch


class AugmentedLoader:
    """``loader`` whose every batch goes through ``augmenter`` (length and batches otherwise kept).

    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> data = DataLoader(TensorDataset(torch.zeros(4, 1, 4, 4), torch.arange(4)), batch_size=2)
    >>> wrapped = AugmentedLoader(data, BatchAugmenter(Augmentation(shift=1)))
    >>> len(wrapped), next(iter(wrapped))[0].shape
    (2, torch.Size([2, 1, 4, 4]))
    """

    def __init__(self, loader: Iterable[Any], augmenter: BatchAugmenter) -> None:
        self.loader, self.augmenter = loader, augmenter

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            yield self.augmenter(batch)

    def __getattr__(self, name: str) -> Any:  # dataset, batch_size, ... of the wrapped loader
        if name in ("loader", "augmenter"):
            raise AttributeError(name)
        return getattr(self.loader, name)
