"""Pseudo-label distillation: the teacher labels an unlabeled transfer set, the student learns it.

``pseudo_label`` runs the teacher once over data without labels and returns a TensorDataset of
``(x, pseudo_y)``: the teacher's arg-max, or k-means clusters of its probabilities or of a
captured feature layer. ``distill_pseudo`` trains a student on it (plus any labeled data), with
the Trainer alone or, given a ``DistillConfig``, with ``distill`` so soft KD terms join the
hard pseudo-labels. ``withhold_labels`` hides the labels of part of a dataset (benchmarks).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset, TensorDataset

from slimkit.distillation.hooks import FeatureCapture
from slimkit.errors import ConfigError, DataError
from slimkit.modelio import logits_of
from slimkit.train import TrainConfig, Trainer

if TYPE_CHECKING:
    from slimkit.distillation.config import DistillConfig

Method = Literal["argmax", "kmeans"]


def inputs_of(batch: Any) -> Tensor:
    """The inputs of a batch that is ``x``, ``(x,)`` or ``(x, anything...)``."""
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    if not isinstance(x, Tensor):
        raise DataError(f"unlabeled loader yields {type(x).__name__}; expected x, (x,) or (x, ...)")
    return x


@torch.no_grad()
def teacher_predictions(
    teacher: nn.Module, unlabeled: Iterable[Any], *, features: str | None = None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(inputs, teacher logits, pooled features or None)`` over ``unlabeled``, on the CPU.

    ``features`` is a module path of ``teacher`` (``"classifier.fc1"``, ``"classifier:input"``);
    4-D maps are global-average-pooled, others flattened. The teacher runs in eval mode.
    """
    device = next((p.device for p in teacher.parameters()), torch.device("cpu"))
    was_training = teacher.training
    teacher.eval()
    xs, logits, feats = [], [], []
    capture = FeatureCapture(teacher, [features]) if features else None
    try:
        for batch in unlabeled:
            x = inputs_of(batch)
            logits.append(logits_of(teacher(x.to(device))).float().cpu())
            xs.append(x.cpu())
            if capture is not None:
                f = capture.take()[features]
                feats.append((F.adaptive_avg_pool2d(f, 1) if f.dim() == 4 else f).flatten(1).float().cpu())
    finally:
        teacher.train(was_training)
        if capture is not None:
            capture.remove()
    if not xs:
        raise DataError("pseudo-labeling got an empty unlabeled set")
    return torch.cat(xs), torch.cat(logits), torch.cat(feats) if capture is not None else None


def kmeans_labels(
    points: Tensor, teacher_labels: Tensor, num_clusters: int, *, map_to_classes: bool = True, seed: int = 0
) -> Tensor:
    """k-means (scikit-learn) cluster of every point, as a class or as a cluster id.

    With ``map_to_classes`` each cluster becomes the class most of its members get from the
    teacher's arg-max (several clusters may map to one class: over-clustering is fine); otherwise
    the cluster ids ``0..num_clusters-1`` are returned, and the student needs that many outputs.

    >>> pts = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    >>> kmeans_labels(pts, torch.tensor([1, 1, 0, 1]), 2).tolist()
    [1, 1, 0, 0]
    """
    from sklearn.cluster import KMeans

    if len(points) < num_clusters:
        raise DataError(f"k-means: {len(points)} samples cannot form {num_clusters} clusters")
    km = KMeans(n_clusters=num_clusters, n_init=4, random_state=seed)
    clusters = km.fit_predict(points.double().numpy())
    if not map_to_classes:
        return torch.as_tensor(clusters, dtype=torch.long)
    votes = np.zeros((num_clusters, int(teacher_labels.max()) + 1), dtype=np.int64)
    np.add.at(votes, (clusters, teacher_labels.numpy()), 1)
    return torch.as_tensor(votes.argmax(axis=1)[clusters], dtype=torch.long)


def pseudo_label(
    teacher: nn.Module,
    unlabeled: Iterable[Any] | Dataset,
    *,
    method: Method = "argmax",
    threshold: float | None = None,
    features: str | None = None,
    num_clusters: int | None = None,
    map_to_classes: bool | None = None,
    seed: int = 0,
) -> TensorDataset:
    """Label ``unlabeled`` with ``teacher``; returns ``TensorDataset(x, pseudo_y)``.

    ``method="argmax"`` takes the teacher's most likely class. ``method="kmeans"`` clusters the
    teacher's softmax probabilities, or the ``features`` layer's activations when given, into
    ``num_clusters`` (default: the number of classes) clusters; ``map_to_classes`` (default:
    True exactly when ``num_clusters`` equals the class count) maps each to its majority teacher
    class, else the cluster ids are the labels. ``threshold`` drops samples whose top teacher
    probability is below it. ``unlabeled`` is a loader (or dataset) yielding x, (x,) or (x, y);
    the inputs are stored as the loader yields them (after any augmentation it applies).

    >>> teacher = nn.Linear(2, 3)
    >>> data = pseudo_label(teacher, [torch.randn(5, 2)])
    >>> torch.equal(data.tensors[1], teacher(data.tensors[0]).argmax(1))
    True
    """
    if method not in ("argmax", "kmeans"):
        raise ConfigError(f"pseudo_label: method must be 'argmax' or 'kmeans', got {method!r}")
    if threshold is not None and not 0 <= threshold < 1:
        raise ConfigError(f"pseudo_label: threshold must be in [0, 1), got {threshold!r}")
    if features is not None and method != "kmeans":
        raise ConfigError("pseudo_label: features only matter for method='kmeans'", hint="drop features or use kmeans")
    if isinstance(unlabeled, Dataset) and not isinstance(unlabeled, Iterable):
        unlabeled = DataLoader(unlabeled, batch_size=512)
    x, logits, feats = teacher_predictions(teacher, unlabeled, features=features)
    probs = logits.softmax(dim=1)
    confidence, labels = probs.max(dim=1)
    if method == "kmeans":
        classes = logits.shape[1]
        k = num_clusters if num_clusters is not None else classes
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise ConfigError(f"pseudo_label: num_clusters must be an integer >= 2, got {num_clusters!r}")
        mapped = map_to_classes if map_to_classes is not None else k == classes
        labels = kmeans_labels(feats if feats is not None else probs, labels, k, map_to_classes=mapped, seed=seed)
    keep = confidence >= threshold if threshold is not None else torch.ones_like(labels, dtype=torch.bool)
    if not keep.any():
        raise DataError(
            f"pseudo_label: no sample reaches the confidence threshold {threshold} "
            f"(highest teacher probability {float(confidence.max()):.3f})",
            hint="lower the threshold",
        )
    return TensorDataset(x[keep], labels[keep])


def distill_pseudo(
    student: nn.Module,
    teacher: nn.Module,
    unlabeled_loader: DataLoader,
    config: TrainConfig | DistillConfig | None = None,
    *,
    labeled_loader: DataLoader | None = None,
    val_loader: Iterable[Any] | None = None,
    method: Method = "argmax",
    threshold: float | None = None,
    features: str | None = None,
    num_clusters: int | None = None,
) -> nn.Module:
    """Train ``student`` (in place) on the teacher's pseudo-labels of ``unlabeled_loader``.

    The pseudo-labeled set (see ``pseudo_label``) is joined with ``labeled_loader``'s dataset
    and shuffled in batches of the unlabeled loader's size. A ``TrainConfig`` trains on the hard
    pseudo-labels with cross-entropy; a ``DistillConfig`` runs ``distill`` with its losses, so
    ``ce`` reads the pseudo-labels and ``kd`` adds the teacher's soft labels.
    """
    from slimkit.distillation.config import DistillConfig

    config = config if config is not None else TrainConfig()
    if not isinstance(config, (TrainConfig, DistillConfig)):
        raise ConfigError(f"distill_pseudo needs a TrainConfig or DistillConfig, got {type(config).__name__}")
    data: Dataset = pseudo_label(
        teacher, unlabeled_loader, method=method, threshold=threshold, features=features, num_clusters=num_clusters,
    )  # fmt: skip
    if labeled_loader is not None:
        data = ConcatDataset([data, labeled_loader.dataset])
    batch_size = getattr(unlabeled_loader, "batch_size", None) or 128
    loader = DataLoader(data, batch_size=batch_size, shuffle=True)
    if isinstance(config, DistillConfig):
        from slimkit.distillation.offline import run_distillation

        run_distillation(student, teacher, loader, config, val_loader=val_loader)
    else:
        Trainer(student, config).fit(loader, val_loader)
    return student


class WithheldLabels(NamedTuple):
    """``labeled`` keeps its labels; ``unlabeled`` yields ``(x,)`` only; ``hidden_labels`` are
    the withheld true labels, in ``unlabeled``'s order (to score pseudo-labels, never to train)."""

    labeled: Dataset
    unlabeled: Dataset
    hidden_labels: Tensor


class InputsOnly(Dataset):
    """A view of a dataset of ``(x, y, ...)`` that yields ``(x,)``."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Tensor]:
        return (self.dataset[index][0],)


def withhold_labels(dataset: Dataset, fraction: float = 0.8, *, seed: int = 0) -> WithheldLabels:
    """Hide the labels of a random ``fraction`` of ``dataset`` (deterministic in ``seed``).

    >>> data = TensorDataset(torch.zeros(10, 2), torch.arange(10))
    >>> split = withhold_labels(data, 0.8)
    >>> len(split.labeled), len(split.unlabeled), len(split.unlabeled[0])
    (2, 8, 1)
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"withhold_labels: fraction must be in (0, 1), got {fraction!r}")
    n = len(dataset)  # type: ignore[arg-type]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    cut = round(n * fraction)
    hidden, kept = order[:cut], order[cut:]
    if not hidden or not kept:
        raise DataError(f"withhold_labels: {n} samples are too few to withhold {fraction:.0%} of their labels")
    unlabeled = Subset(dataset, hidden)
    labels = torch.stack([torch.as_tensor(dataset[i][1]) for i in hidden])
    return WithheldLabels(Subset(dataset, kept), InputsOnly(unlabeled), labels)

