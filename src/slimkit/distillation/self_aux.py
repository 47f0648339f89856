"""Self-distillation with auxiliary classifiers ("Be Your Own Teacher", Zhang et al. 2019).

Small classifier heads read intermediate features, captured by forward hooks (the model is never
edited), and learn from the labels and from the model's own final head::

    loss = CE(final, y) + sum_i [ (1 - alpha) CE(aux_i, y) + alpha T^2 KL(final/T || aux_i/T)
                                  + feature_weight * MSE(adapter_i(h_i), pooled deepest features) ]

The final logits and the deepest features are detached inside the KD and feature terms (the deep
part is the teacher), so those terms train the shallow layers and their heads. The heads live in
``SelfDistillLoss`` and the Trainer optimizes them with the model; afterwards the model is
returned unchanged in structure (same ``state_dict`` keys) with every hook removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slimkit.distillation.hooks import FeatureCapture
from slimkit.distillation.losses.base import non_negative, positive
from slimkit.distillation.losses.logit import soft_kl
from slimkit.errors import ConfigError, DataError, ModelError
from slimkit.modelio import logits_of, to_device
from slimkit.train import Callback, TrainConfig, Trainer, resolve_device

HeadKind = Literal["linear", "conv", "pool"]
#: ``pool`` heads average feature maps down to at most this many cells per side.
POOL_GRID = 7


class AuxHead(nn.Module):
    """A classifier on a feature map: ``[conv3x3-BN-ReLU ->] global average pool -> linear``, or
    for ``kind="pool"`` an average pool to a grid of at most ``POOL_GRID`` cells per side, kept
    flat (spatial detail at the cost of a wider linear layer: a cheap head that still classifies
    well from early features, as early exits need).

    2-D features (N, F) go straight to the linear layer. ``embed`` returns the vector before it.

    >>> head = AuxHead(torch.zeros(2, 8, 4, 4), num_classes=3, kind="conv")
    >>> head(torch.zeros(5, 8, 4, 4)).shape
    torch.Size([5, 3])
    """

    def __init__(self, example: Tensor, num_classes: int, *, kind: HeadKind = "linear") -> None:
        super().__init__()
        if example.dim() not in (2, 4):
            raise ModelError(f"AuxHead reads (N, C, H, W) or (N, F) features, got shape {tuple(example.shape)}")
        width = example.shape[1]
        layers: list[nn.Module] = []
        if example.dim() == 4:
            if kind == "conv":
                # A little capacity of its own, so a shallow feature map can become class-separable.
                layers += [nn.Conv2d(width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU()]
                width *= 2
            grid = (min(POOL_GRID, example.shape[2]), min(POOL_GRID, example.shape[3])) if kind == "pool" else (1, 1)
            if grid != tuple(example.shape[2:]):  # a map already this small is kept as it is
                layers.append(nn.AdaptiveAvgPool2d(grid))
            layers.append(nn.Flatten())
            width *= grid[0] * grid[1]
        self.body = nn.Sequential(*layers)
        self.width = width
        self.fc = nn.Linear(width, num_classes)

    def embed(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.embed(x))


def pooled(x: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, C) by global average pooling; (N, F) unchanged."""
    return F.adaptive_avg_pool2d(x, 1).flatten(1) if x.dim() == 4 else x.flatten(1)


class SelfDistillLoss(nn.Module):
    """The BYOT loss over ``model``'s final logits and aux heads on ``layers``; a Trainer LossFn.

    The constructor registers the hooks and builds the heads from one forward pass of
    ``example_input`` (eval mode, no gradients). Call ``close()`` to remove the hooks.

    >>> net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    >>> loss = SelfDistillLoss(net, ["1"], torch.zeros(2, 4))
    >>> value, logs = loss(net(torch.zeros(2, 4)), (None, torch.tensor([0, 1])))
    >>> sorted(logs); loss.close()
    ['aux0.ce', 'aux0.kd', 'ce']
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str],
        example_input: Tensor,
        *,
        temperature: float = 3.0,
        alpha: float = 0.3,
        feature_weight: float = 0.0,
        feature_layer: str | None = None,
        head: HeadKind = "linear",
    ) -> None:
        super().__init__()
        if isinstance(layers, str) or not layers:
            raise ConfigError("self-distillation needs a non-empty list of layer paths for the aux heads")
        if head not in ("linear", "conv", "pool"):
            raise ConfigError(f"self-distillation: head must be 'linear', 'conv' or 'pool', got {head!r}")
        self.temperature = positive(temperature, "temperature", "self-distill")
        self.alpha = non_negative(alpha, "alpha", "self-distill")
        if self.alpha > 1:
            raise ConfigError(f"self-distillation: alpha must be in [0, 1], got {alpha!r}")
        self.feature_weight = non_negative(feature_weight, "feature_weight", "self-distill")
        if self.feature_weight and feature_layer is None:
            raise ConfigError("self-distillation: feature_weight > 0 needs feature_layer (the deepest features)")
        self.layers, self.feature_layer = list(layers), feature_layer if self.feature_weight else None
        paths = self.layers + ([self.feature_layer] if self.feature_layer else [])
        self.capture = FeatureCapture(model, paths)
        try:
            logits, feats = self._probe(model, example_input)
            self.heads = nn.ModuleList(AuxHead(feats[p], logits.shape[1], kind=head) for p in self.layers)
            self.adapters = nn.ModuleList()
            if self.feature_layer is not None:
                deep = pooled(feats[self.feature_layer]).shape[1]
                self.adapters.extend(nn.Linear(h.width, deep) for h in self.heads)
            self.to(example_input.device)
        except BaseException:
            self.capture.remove()
            raise

    def _probe(self, model: nn.Module, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        was_training = model.training
        model.eval()  # no BatchNorm statistics change for a shape probe
        try:
            with torch.no_grad():
                logits = logits_of(model(x))
        finally:
            model.train(was_training)
        if logits.dim() != 2:
            raise ModelError(f"self-distillation expects logits of shape (batch, classes), got {tuple(logits.shape)}")
        return logits, self.capture.take()

    def forward(self, outputs: Any, batch: Sequence[Any]) -> tuple[Tensor, dict[str, float]]:
        if len(batch) < 2 or not isinstance(batch[1], Tensor):
            raise DataError("self-distillation needs hard labels: the loader must yield (x, y, ...)")
        feats, final, y = self.capture.take(), logits_of(outputs), batch[1]
        missing = [p for p in self.capture.paths if p not in feats]
        if missing:
            raise ModelError(
                f"self-distillation: no features were captured at {missing} in this forward pass",
                hint="choose layers the model's forward goes through (and keep the hooks: don't call close())",
            )
        total = F.cross_entropy(final, y)
        logs = {"ce": float(total.detach())}
        teacher = final.detach()
        deep = pooled(feats[self.feature_layer]).detach() if self.feature_layer else None
        for i, head in enumerate(self.heads):
            emb = head.embed(feats[self.layers[i]])
            z = head.fc(emb)
            ce, kd = F.cross_entropy(z, y), soft_kl(z, teacher, self.temperature)
            total = total + (1 - self.alpha) * ce + self.alpha * kd
            logs[f"aux{i}.ce"], logs[f"aux{i}.kd"] = float(ce.detach()), float(kd.detach())
            if deep is not None:
                feat = F.mse_loss(self.adapters[i](emb), deep)
                total = total + self.feature_weight * feat
                logs[f"aux{i}.feat"] = float(feat.detach())
        return total, logs

    def head_logits(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        """Every aux head's logits from captured ``features``, keyed by layer path."""
        return {path: head(features[path]) for path, head in zip(self.layers, self.heads)}

    def close(self) -> None:
        """Remove the hooks from the model; safe to call twice."""
        self.capture.remove()

    def extra_repr(self) -> str:
        return f"layers={self.layers}, temperature={self.temperature}, alpha={self.alpha}, feature_weight={self.feature_weight}"


def default_layers(model: nn.Module) -> list[str]:
    """Every ``features.{i}`` block but the last, for models built like the zoo's (``features``
    an ``nn.Sequential``); the last block already feeds the final head."""
    blocks = getattr(model, "features", None)
    if not isinstance(blocks, nn.Sequential) or len(blocks) < 2:
        raise ConfigError(
            f"self-distillation cannot guess aux layers for {type(model).__name__}",
            hint="pass layers=[...] with module paths, e.g. the outputs of intermediate blocks",
        )
    return [f"features.{i}" for i in range(len(blocks) - 1)]


def self_distill(
    model: nn.Module,
    train_loader: Iterable[Any],
    *,
    layers: Sequence[str] | None = None,
    config: TrainConfig | None = None,
    val_loader: Iterable[Any] | None = None,
    temperature: float = 3.0,
    alpha: float = 0.3,
    feature_weight: float = 0.0,
    feature_layer: str | None = None,
    head: HeadKind = "linear",
    return_heads: bool = False,
    callbacks: Sequence[Callback] = (),
    out_dir: str | Path | None = None,
) -> nn.Module | tuple[nn.Module, dict[str, AuxHead]]:
    """Train ``model`` in place with aux-head self-distillation; returns the model.

    ``layers`` defaults to ``default_layers(model)``; ``feature_weight > 0`` adds the feature
    term towards ``feature_layer``. With ``return_heads=True`` returns ``(model, heads)`` where
    ``heads`` maps each layer path to its trained ``AuxHead`` (e.g. for early exits).

    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    >>> loader = DataLoader(TensorDataset(torch.randn(16, 4), torch.randint(0, 2, (16,))), batch_size=8)
    >>> trained, heads = self_distill(net, loader, layers=["1"], config=TrainConfig(epochs=1, progress=False), return_heads=True)
    >>> trained is net, list(heads)
    (True, ['1'])
    """
    config = config if config is not None else TrainConfig()
    layers = list(layers) if layers is not None else default_layers(model)
    device = resolve_device(config.device)
    model.to(device)
    try:
        first = next(iter(train_loader))
    except StopIteration:
        raise DataError("self_distill: train_loader yields no batches") from None
    example = to_device(first, device)
    example = example[0] if isinstance(example, tuple) else example
    loss = SelfDistillLoss(
        model, layers, example[:2], temperature=temperature, alpha=alpha,
        feature_weight=feature_weight, feature_layer=feature_layer, head=head,
    )  # fmt: skip
    try:
        Trainer(model, config, loss_fn=loss, callbacks=callbacks, out_dir=out_dir).fit(train_loader, val_loader)
    finally:
        loss.close()
    if return_heads:
        return model, dict(zip(loss.layers, loss.heads))
    return model
