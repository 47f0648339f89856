"""Online / mutual learning (DML, Zhang et al. 2018): peer students teach each other as they train.

Each peer k minimises ``CE(z_k, y) + T^2 * KL(p_bar_k || softmax(z_k / T))`` where ``p_bar_k`` is
the *detached* mean of the other peers' softened predictions (the paper's "ensemble of the other
peers" variant; with two peers it is exactly the original DML loss). The peers are wrapped in one
``PeerEnsemble`` and trained by one ``Trainer`` with ``MutualLoss`` as its loss: the peers'
parameters are disjoint, so the summed loss gives each peer the gradient of its own loss. This is
the simultaneous-update form of DML (the paper updates the peers one after another in each step;
both converge to the same kind of solution, and one backward pass is cheaper).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slimkit.distillation.losses.base import positive
from slimkit.errors import ConfigError, DataError, ModelError
from slimkit.train import Callback, TrainConfig, Trainer, evaluate_loss_acc


class PeerLogits(NamedTuple):
    """What ``PeerEnsemble`` returns. ``mean`` (N, C) comes first so the Trainer's accuracy and
    validation read the ensemble's logits; ``stacked`` (K, N, C) holds every peer's."""

    mean: Tensor
    stacked: Tensor


class PeerEnsemble(nn.Module):
    """Run every peer on the same input and return ``PeerLogits(mean, stacked)``.

    >>> peers = PeerEnsemble([nn.Linear(4, 3), nn.Linear(4, 3)])
    >>> out = peers(torch.zeros(5, 4))
    >>> tuple(out.mean.shape), tuple(out.stacked.shape)
    ((5, 3), (2, 5, 3))
    """

    def __init__(self, peers: Sequence[nn.Module]) -> None:
        super().__init__()
        peers = list(peers)
        if len(peers) < 2:
            raise ConfigError(f"mutual learning needs at least 2 peer students, got {len(peers)}")
        if len({id(p) for p in peers}) != len(peers):
            raise ConfigError(
                "mutual learning got the same module object twice among its peers",
                hint="pass distinct models, e.g. build_model(...) once per peer",
            )
        self.peers = nn.ModuleList(peers)

    def forward(self, x: Tensor) -> PeerLogits:
        logits = [peer(x) for peer in self.peers]
        shapes = {tuple(z.shape) for z in logits}
        if len(shapes) != 1:
            listing = ", ".join(f"peer {k}: {tuple(z.shape)}" for k, z in enumerate(logits))
            raise ModelError(
                f"mutual learning peers disagree on the logits' shape ({listing})",
                hint="build every peer with the same num_classes",
            )
        stacked = torch.stack(logits)
        return PeerLogits(stacked.mean(dim=0), stacked)


class MutualLoss(nn.Module):
    """DML loss summed over peers, with per-peer ``peer{k}.ce`` / ``peer{k}.kl`` in the logs.

    Takes the ``PeerLogits`` (or a (K, N, C) tensor) and the batch ``(x, y, ...)``.

    >>> z = torch.tensor([[[2.0, 0.0]], [[0.0, 2.0]]])  # 2 peers, 1 sample
    >>> loss, logs = MutualLoss()(z, (None, torch.tensor([0])))
    >>> sorted(logs)
    ['peer0.ce', 'peer0.kl', 'peer1.ce', 'peer1.kl']
    """

    def __init__(self, temperature: float = 1.0, *, kl_weight: float = 1.0) -> None:
        super().__init__()
        self.temperature = positive(temperature, "temperature", "mutual")
        self.kl_weight = float(kl_weight)

    def forward(self, outputs: PeerLogits | Tensor, batch: Sequence[Any]) -> tuple[Tensor, dict[str, float]]:
        stacked = outputs.stacked if isinstance(outputs, PeerLogits) else outputs
        if stacked.dim() != 3 or stacked.shape[0] < 2:
            raise ModelError(f"MutualLoss expects peer logits of shape (peers >= 2, batch, classes), got {tuple(stacked.shape)}")
        if len(batch) < 2 or not isinstance(batch[1], Tensor):
            raise DataError("mutual learning needs hard labels: the loader must yield (x, y, ...)")
        y, temp, peers = batch[1], self.temperature, stacked.shape[0]
        log_p = F.log_softmax(stacked / temp, dim=2)
        # Targets are detached: a peer learns from the others but never pulls them towards itself.
        probs = log_p.detach().exp()
        others = (probs.sum(dim=0, keepdim=True) - probs) / (peers - 1)
        total = stacked.new_zeros(())
        logs: dict[str, float] = {}
        for k in range(peers):
            ce = F.cross_entropy(stacked[k], y)
            kl = F.kl_div(log_p[k], others[k], reduction="batchmean") * temp**2
            total = total + ce + self.kl_weight * kl
            logs[f"peer{k}.ce"], logs[f"peer{k}.kl"] = float(ce.detach()), float(kl.detach())
        return total, logs

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, kl_weight={self.kl_weight}"


class PeerValidation(Callback):
    """Add each peer's own ``val_acc_peer{k}`` / ``val_loss_peer{k}`` to the epoch metrics
    (the Trainer's ``val_acc`` is the ensemble's)."""

    def __init__(self, val_loader: Iterable[Any]) -> None:
        self.val_loader = val_loader

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        assert isinstance(trainer.model, PeerEnsemble)
        for k, peer in enumerate(trainer.model.peers):
            loss, acc = evaluate_loss_acc(peer, self.val_loader, device=trainer.device)
            metrics[f"val_loss_peer{k}"], metrics[f"val_acc_peer{k}"] = loss, acc


def mutual(
    students: Sequence[nn.Module],
    train_loader: Iterable[Any],
    config: TrainConfig | None = None,
    *,
    val_loader: Iterable[Any] | None = None,
    temperature: float = 1.0,
    callbacks: Sequence[Callback] = (),
    out_dir: str | Path | None = None,
) -> list[nn.Module]:
    """Train ``students`` together by deep mutual learning; returns the trained peers.

    Each returned peer is the original module, trained in place, and works alone. One Trainer
    runs the ``PeerEnsemble``, so ``out_dir`` gets its checkpoints and ``metrics.jsonl``: with a
    ``val_loader`` each epoch records the ensemble's ``val_acc`` (mean of the peers' logits) and
    each peer's ``val_acc_peer{k}``, plus ``train_peer{k}.ce`` / ``train_peer{k}.kl``.

    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> x = torch.randn(32, 4); loader = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=8)
    >>> a, b = mutual([nn.Linear(4, 2), nn.Linear(4, 2)], loader, TrainConfig(epochs=1, progress=False))
    >>> type(a).__name__
    'Linear'
    """
    ensemble = PeerEnsemble(students)
    extra = [PeerValidation(val_loader)] if val_loader is not None else []
    trainer = Trainer(
        ensemble, config, loss_fn=MutualLoss(temperature), callbacks=[*extra, *callbacks], out_dir=out_dir
    )
    trainer.fit(train_loader, val_loader)
    return list(ensemble.peers)
