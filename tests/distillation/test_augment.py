import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from slimkit.distillation.augment import (
    Augmentation,
    AugmentedLoader,
    BatchAugmenter,
    flip_images,
    rebuild,
    shift_images,
)
from slimkit.errors import ConfigError, DataError


def images(n=8):
    torch.manual_seed(0)
    return torch.randn(n, 1, 6, 6), torch.arange(n) % 3


def test_config_rejects_mix_prob_without_mixing():
    with pytest.raises(ConfigError, match="mix_prob"):
        Augmentation(mix_prob=0.5)
    assert not Augmentation().active and Augmentation(cutmix=1.0).mixes


def test_shift_moves_pixels_and_replicates_edges():
    x = torch.arange(36.0).reshape(1, 1, 6, 6)
    out = shift_images(x, 2, (torch.tensor([2]), torch.tensor([0])))  # no vertical move, 2 pixels right
    assert torch.equal(out[0, 0, :, 2:], x[0, 0, :, :4])
    assert torch.equal(out[0, 0, :, 0], x[0, 0, :, 0])  # the replicated edge
    assert torch.equal(flip_images(x, torch.tensor([True])), x.flip(-1))


def test_mixup_mixes_inputs_and_labels_alike():
    x, y = images()
    torch.manual_seed(1)
    ax, ay = BatchAugmenter(Augmentation(mixup=1.0), num_classes=3)((x, y))
    assert ay.shape == (8, 3) and torch.allclose(ay.sum(1), torch.ones(8))
    # each mixed image is lam * x_i + (1 - lam) * x_j with lam = the weight of its own label
    lam = ay[torch.arange(8), y]
    partner = (ax - lam[:, None, None, None] * x) / (1 - lam[:, None, None, None]).clamp_min(1e-6)
    matches = [(partner[i] - x).flatten(1).abs().max(1).values.min() < 1e-3 for i in range(8) if lam[i] < 0.999]
    assert matches and all(matches)


def test_cutmix_pastes_a_box_and_keeps_its_share_as_the_label_weight():
    x, y = images()
    torch.manual_seed(3)
    ax, ay = BatchAugmenter(Augmentation(cutmix=1.0), num_classes=3)((x, y))
    changed = (ax != x).flatten(1).float().mean(1)  # share of pixels replaced, per image
    own = ay[torch.arange(8), y]
    assert torch.all((own - (1 - changed)) >= -1e-6)  # at most the pasted share is lost (a partner may equal itself)


def test_only_float_inputs_change_and_structure_is_kept():
    ids, x, y = torch.randint(0, 5, (4, 3)), torch.randn(4, 1, 6, 6), torch.arange(4)
    batch = {"tokens": ids, "image": x, "labels": y}
    torch.manual_seed(0)
    out = BatchAugmenter(Augmentation(shift=1, mixup=0.5), num_classes=4)(batch)
    assert set(out) == {"tokens", "image", "labels"} and torch.equal(out["tokens"], ids)
    assert out["labels"].shape == (4, 4) and not torch.equal(out["image"], x)
    aug = BatchAugmenter(Augmentation(shift=1))
    assert aug((ids, y)) is not None and aug.skipped and "token" in aug.skipped  # nothing to augment: said once


def test_mixing_integer_labels_needs_the_class_count():
    with pytest.raises(DataError, match="number of classes"):
        BatchAugmenter(Augmentation(mixup=1.0))(images())


def test_rebuild_keeps_extras_and_loader_wrapper_keeps_length():
    assert rebuild((torch.zeros(1), torch.tensor([0]), {"i": 1}), torch.ones(1), None)[2] == {"i": 1}
    x, y = images(6)
    wrapped = AugmentedLoader(DataLoader(TensorDataset(x, y), batch_size=4), BatchAugmenter(Augmentation(shift=1)))
    assert len(wrapped) == 2 and [b[0].shape[0] for b in wrapped] == [4, 2] and wrapped.batch_size == 4
    torch.manual_seed(5)
    first = next(iter(wrapped))[0]
    torch.manual_seed(5)
    assert torch.equal(first, next(iter(wrapped))[0])  # the global generator drives it: seeded epochs repeat
