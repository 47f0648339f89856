import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from slimkit.data import load_dataset
from slimkit.distillation.config import DistillConfig
from slimkit.distillation.pseudo_label import (
    InputsOnly,
    distill_pseudo,
    kmeans_labels,
    pseudo_label,
    withhold_labels,
)
from slimkit.errors import ConfigError, DataError
from slimkit.models import build_model
from slimkit.train import TrainConfig, evaluate_loss_acc, train


class Voter(nn.Module):
    """x = (cx, cy, vote): ``embed`` sees the coordinates, the logits say ``vote`` (5 vs 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Identity()

    def forward(self, x):
        self.embed(x[:, :2])
        return F.one_hot(x[:, 2].long(), 3).float() * 5


def blobs(wrong_per_blob=2, n=20):
    """Three far-apart blobs; blob c's true class is c; the teacher votes wrongly on a few."""
    torch.manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    xs, truth = [], []
    for c, centre in enumerate(centres):
        pts = centre + 0.3 * torch.randn(n, 2)
        votes = torch.full((n, 1), float(c))
        votes[:wrong_per_blob] = float((c + 1) % 3)
        xs.append(torch.cat([pts, votes], 1))
        truth += [c] * n
    return torch.cat(xs), torch.tensor(truth)


@pytest.fixture(scope="module")
def teacher():
    # Trained once per module (the tests only read it): the same data as ``tiny_splits``.
    splits = load_dataset("synthetic", num_classes=3, shape=(1, 8, 8), size=120, test_size=30)
    torch.manual_seed(0)
    net = build_model("mlp", hidden=[16], input_size=8, num_classes=3)
    train(net, DataLoader(splits.train, batch_size=16, shuffle=True), epochs=3, lr=1e-2, progress=False, threads=1)
    return net.eval().requires_grad_(False)


@pytest.mark.parametrize("shape", ["x", "(x,)", "(x, y)"])
def test_argmax_labels_match_teacher_for_any_batch_shape(teacher, tiny_splits, shape):
    x = tiny_splits.train.tensors[0]
    items = {"x": TensorDataset(x), "(x,)": InputsOnly(tiny_splits.train), "(x, y)": tiny_splits.train}[shape]
    loader = DataLoader(items, batch_size=32, collate_fn=(lambda b: torch.stack([i[0] for i in b])) if shape == "x" else None)
    data = pseudo_label(teacher, loader)
    torch.testing.assert_close(data.tensors[0], x)
    assert torch.equal(data.tensors[1], teacher(x).argmax(1))
    assert teacher.training is False


def test_threshold_drops_low_confidence_samples():
    logits = torch.tensor([[4.0, 0.0], [0.2, 0.0], [0.0, 3.0], [0.0, 0.1]])
    data = pseudo_label(nn.Identity(), [logits], threshold=0.9)
    assert data.tensors[0].tolist() == [[4.0, 0.0], [0.0, 3.0]]
    assert data.tensors[1].tolist() == [0, 1]
    with pytest.raises(DataError, match="no sample reaches the confidence threshold 0.99"):
        pseudo_label(nn.Identity(), [torch.zeros(3, 2)], threshold=0.99)


def test_kmeans_on_features_maps_clusters_to_majority_class():
    x, truth = blobs()
    assert not torch.equal(Voter()(x).argmax(1), truth)  # the teacher is wrong on 6 points
    data = pseudo_label(Voter(), [x], method="kmeans", features="embed")
    assert torch.equal(data.tensors[1], truth)  # every blob takes its majority vote


def test_kmeans_on_probabilities_and_cluster_ids():
    x, truth = blobs(wrong_per_blob=0)
    assert torch.equal(pseudo_label(Voter(), [x], method="kmeans").tensors[1], truth)
    ids = pseudo_label(Voter(), [x], method="kmeans", features="embed", num_clusters=6).tensors[1]
    assert set(ids.tolist()) == set(range(6))  # kept as cluster ids: 6 != 3 classes
    for c in range(3):  # each cluster lies inside one blob
        assert not set(ids[truth == c].tolist()) & set(ids[truth != c].tolist())
    over = pseudo_label(Voter(), [x], method="kmeans", features="embed", num_clusters=6, map_to_classes=True)
    assert torch.equal(over.tensors[1], truth)


def test_kmeans_labels_helper_and_errors():
    pts = torch.tensor([[0.0], [0.1], [9.0], [9.1]])
    assert kmeans_labels(pts, torch.tensor([2, 2, 0, 0]), 2).tolist() == [2, 2, 0, 0]
    with pytest.raises(DataError, match="cannot form 5 clusters"):
        kmeans_labels(pts, torch.zeros(4, dtype=torch.long), 5)
    with pytest.raises(ConfigError, match="method"):
        pseudo_label(nn.Identity(), [pts], method="knn")
    with pytest.raises(ConfigError, match="features only matter"):
        pseudo_label(nn.Identity(), [pts], features="x")
    with pytest.raises(ConfigError, match="threshold"):
        pseudo_label(nn.Identity(), [pts], threshold=1.5)
    with pytest.raises(DataError, match="empty"):
        pseudo_label(nn.Identity(), [])


def test_withhold_labels_is_deterministic_and_complete(tiny_splits):
    data = tiny_splits.train
    split = withhold_labels(data, 0.8, seed=3)
    assert (len(split.labeled), len(split.unlabeled)) == (22, 86)
    assert len(split.unlabeled[0]) == 1  # (x,) only
    hidden = split.unlabeled.dataset.indices
    assert sorted(hidden + split.labeled.indices) == list(range(len(data)))
    assert torch.equal(split.hidden_labels, data.tensors[1][hidden])
    assert withhold_labels(data, 0.8, seed=3).labeled.indices == split.labeled.indices
    with pytest.raises(ConfigError, match="fraction"):
        withhold_labels(data, 1.0)


@pytest.mark.parametrize("kind", ["train", "distill"])
def test_student_learns_from_pseudo_labels(teacher, tiny_splits, kind):
    split = withhold_labels(tiny_splits.train, 0.8)
    torch.manual_seed(1)
    student = build_model("mlp", hidden=[8], input_size=8, num_classes=3)
    train_cfg = TrainConfig(epochs=3, lr=1e-2, progress=False, threads=1)
    config = train_cfg if kind == "train" else DistillConfig(train=train_cfg)
    out = distill_pseudo(
        student, teacher, DataLoader(split.unlabeled, batch_size=16),
        config, labeled_loader=DataLoader(split.labeled, batch_size=16),
    )  # fmt: skip
    assert out is student
    assert evaluate_loss_acc(student, DataLoader(tiny_splits.test, batch_size=64))[1] > 0.6
