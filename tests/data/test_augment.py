"""Batch augmentation: shape kept, real shifts, reproducible under torch.manual_seed."""

from __future__ import annotations

import pytest
import torch

from slimkit.data import Augment, AugmentCollate


def _dot_batch(n: int = 64) -> torch.Tensor:
    x = torch.zeros(n, 1, 9, 9)
    x[:, 0, 4, 4] = 1.0  # one bright pixel in the middle
    return x


def test_shape_and_dtype_kept():
    x = torch.randn(8, 3, 10, 12)
    out = Augment(max_shift=2, hflip=True)(x)
    assert out.shape == x.shape and out.dtype == x.dtype


def test_deterministic_under_manual_seed():
    x = torch.randn(16, 1, 8, 8)
    torch.manual_seed(5)
    a = Augment(hflip=True)(x)
    torch.manual_seed(5)
    b = Augment(hflip=True)(x)
    torch.manual_seed(6)
    c = Augment(hflip=True)(x)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_generator_argument_is_used():
    x = torch.randn(16, 1, 8, 8)
    a = Augment()(x, generator=torch.Generator().manual_seed(1))
    b = Augment()(x, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_shifts_are_translations_of_at_most_max_shift():
    torch.manual_seed(0)
    out = Augment(max_shift=2)(_dot_batch())
    assert torch.equal(out.sum((1, 2, 3)), torch.ones(64))  # the dot moved, nothing else appeared
    pos = out[:, 0].flatten(1).argmax(1)
    rows, cols = pos // 9, pos % 9
    assert (rows - 4).abs().max() <= 2 and (cols - 4).abs().max() <= 2
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 10  # many different shifts


def test_edges_are_replicated_not_zero_filled():
    x = torch.full((4, 1, 6, 6), -0.8)  # a normalized blank background is not zero
    torch.manual_seed(0)
    assert torch.equal(Augment(max_shift=2)(x), x)


def test_hflip_flips_about_half_and_only_when_asked():
    x = torch.arange(3.0).reshape(1, 1, 1, 3).repeat(200, 1, 1, 1)
    torch.manual_seed(0)
    flipped = (Augment(max_shift=0, hflip=True)(x)[:, 0, 0, 0] == 2).float().mean()
    assert 0.35 < float(flipped) < 0.65
    assert torch.equal(Augment(max_shift=0, hflip=False)(x), x)


def test_bad_input():
    with pytest.raises(ValueError, match="max_shift must be >= 0"):
        Augment(max_shift=-1)
    with pytest.raises(ValueError, match=r"expects a \(B, C, H, W\) batch"):
        Augment()(torch.zeros(3, 4, 4))


def test_collate_augments_inputs_only_and_keeps_extras():
    samples = [(torch.ones(1, 6, 6) * i, torch.tensor(i), torch.tensor(10 * i)) for i in range(4)]
    torch.manual_seed(0)
    x, y, extra = AugmentCollate(Augment(max_shift=1))(samples)
    assert x.shape == (4, 1, 6, 6) and y.tolist() == [0, 1, 2, 3] and extra.tolist() == [0, 10, 20, 30]
