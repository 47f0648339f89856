"""DARTS: differentiable architecture search (Liu et al., ICLR 2019), optionally latency-aware.

The supernet (:mod:`slimkit.search.darts_space`) is trained on half of the (proxy) training
data while its architecture weights (alpha) are trained on the other half, alternating one
step each (bilevel optimisation):

- ``order: first``: alpha follows the gradient of the validation loss at the current weights;
- ``order: second``: the gradient at the weights after one virtual SGD step,
  ``w' = w - lr * grad_w L_train``, with the second-order term by finite differences, as in
  the paper: ``grad_a L_val(w', a) - lr * (grad_a L_train(w+, a) - grad_a L_train(w-, a)) / 2r``,
  ``w+- = w +- r * grad_w' L_val(w', a)``, ``r = 0.01 / |grad_w' L_val|``.

With ``latency: true`` a per-operation latency table is measured on this machine first (every
operation at each stage's channels and resolution, batch 1, alternating in one process,
median) and alpha's loss becomes FBNet's (Wu et al., CVPR 2019)
``CE * latency_alpha * log(LAT)^latency_beta``, ``LAT`` the expected latency in microseconds:
each edge's operation latencies weighted by its softmax, plus the fixed parts.

After every epoch the search state (weights, alphas, optimizers, schedule, history) is saved
atomically to ``darts/last.pt``; a rerun resumes from it and, each epoch being seeded, ends
with the same alphas as an uninterrupted run. The search ends after ``epochs`` or when
``timeout`` runs out (then the epoch in progress is finished first), and :func:`discretize` turns
the alphas into the child's genotype.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset

from slimkit.config import Config
from slimkit.errors import CheckpointError, ConfigError
from slimkit.fileio import atomic_torch_save, atomic_write_json
from slimkit.search.darts_space import OPS, SuperNet, discretize

__all__ = ["DartsConfig", "DartsResult", "expected_latency", "latency_table", "run_darts"]

RESULT, LAST, FORMAT = "result.json", "last.pt", "slimkit-darts"


class DartsConfig(Config):
    """The DARTS search space and search (see the module docstring).

    - space: ``widths`` (channels per stage), ``cells`` (cells per stage, sharing the stage's
      alphas), ``nodes`` per cell, ``ops`` (a subset of conv3x3, conv1x1, sep_conv3x3,
      max_pool3x3, identity, zero), ``hidden`` (fc units of the head), ``edges_per_node`` kept
      when discretizing, at most ``max_skips`` identity edges per cell (P-DARTS; None: no cap);
    - search: ``epochs``, ``batch_size``, SGD on the weights (``lr`` cosine-annealed to
      ``lr_min``, ``momentum``, ``weight_decay``), Adam on alpha (``arch_lr``,
      ``arch_weight_decay``), ``order`` first or second;
    - ``latency``: FBNet's latency-aware loss with ``latency_alpha`` and ``latency_beta``, the
      operations timed at batch ``latency_batch`` (1, or e.g. 256 to optimise throughput).
    """

    widths: list[int] = Field(default_factory=lambda: [8, 16])
    cells: list[int] = Field(default_factory=lambda: [1, 1])
    nodes: int = Field(3, ge=1, le=6)
    ops: list[str] = Field(default_factory=lambda: list(OPS))
    hidden: int = Field(16, ge=0)
    edges_per_node: int = Field(2, ge=1)
    max_skips: int | None = Field(1, ge=0)
    epochs: int = Field(6, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(0.025, gt=0)
    lr_min: float = Field(0.001, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(3e-4, ge=0)
    arch_lr: float = Field(3e-3, gt=0)
    arch_weight_decay: float = Field(1e-3, ge=0)
    order: Literal["first", "second"] = "first"
    latency: bool = False
    latency_alpha: float = Field(0.2, gt=0)
    latency_beta: float = Field(0.6, gt=0)
    latency_batch: int = Field(1, ge=1)

    @field_validator("ops")
    @classmethod
    def _known_ops(cls, ops: list[str]) -> list[str]:
        unknown = [o for o in ops if o not in OPS]
        if unknown or not ops or len(set(ops)) != len(ops) or all(o == "zero" for o in ops):
            raise ValueError(f"ops must be distinct names from {list(OPS)} (not only 'zero'), got {ops}")
        return ops

    @field_validator("widths", "cells")
    @classmethod
    def _positive(cls, values: list[int]) -> list[int]:
        if not values or any(v < 1 for v in values):
            raise ValueError(f"give one positive value per stage, got {values}")
        return values

    def supernet(self, *, in_channels: int, num_classes: int, input_size: int) -> SuperNet:
        if len(self.cells) != len(self.widths):
            raise ConfigError(f"DartsConfig: cells has {len(self.cells)} entries for {len(self.widths)} widths",
                              hint="give one cell count per stage")
        return SuperNet(widths=self.widths, cells=self.cells, nodes=self.nodes, ops=self.ops, in_channels=in_channels,
                        num_classes=num_classes, input_size=input_size, hidden=self.hidden)

    def knobs(self, genotype: list[Any]) -> dict[str, Any]:
        """``dartsnet`` knobs of the child with ``genotype``."""
        return {"widths": list(self.widths), "cells": list(self.cells), "genotype": genotype, "hidden": self.hidden}


# ---------------------------------------------------------------------- latency (FBNet)
class _FixedParts(nn.Module):
    """The supernet without its cells: what every child runs whatever its genotype."""

    def __init__(self, net: SuperNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        h = self.net.stem(x)
        for stage in self.net.stages:
            if hasattr(stage, "widen"):
                h = stage.widen(h)
            h = stage.pool(h)
        return self.net.classifier(h)


def latency_table(config: DartsConfig, net: SuperNet, *, in_channels: int, input_size: int, warmup: int = 5,
                  repeats: int = 30, threads: int = 1) -> dict[str, Any]:
    """Median latency (ms, at batch ``config.latency_batch``) of every operation at each stage's
    channels and resolution, and of the fixed parts (stem, widening convs, pools, head), timed
    alternating in one process."""
    from slimkit.evaluate import measure_latency
    from slimkit.models.dartsnet import make_op

    batch = config.latency_batch
    stages: list[dict[str, float]] = []
    size = input_size // 2  # cells work after the stem's pool
    for width in config.widths:
        ops = {name: make_op(name, width).eval() for name in config.ops if name != "zero"}
        timed = measure_latency(ops, torch.zeros(1, width, size, size), batch_sizes=(batch,), warmup=warmup,
                                repeats=repeats, threads=threads, memory=False)
        stages.append({**{name: float(timed[name][batch]["median_ms"]) for name in ops}, "zero": 0.0})
        size //= 2
    timed = measure_latency({"fixed": _FixedParts(net).eval()}, torch.zeros(1, in_channels, input_size, input_size),
                            batch_sizes=(batch,), warmup=warmup, repeats=repeats, threads=threads, memory=False)
    return {"ops": stages, "fixed_ms": float(timed["fixed"][batch]["median_ms"]), "threads": threads, "batch": batch}


def expected_latency(net: SuperNet, table: dict[str, Any], cells: list[int]) -> Tensor:
    """The supernet's expected latency in ms (at the table's batch size): per edge, the operations' latencies
    weighted by its softmax; times the cells of the stage; plus the fixed parts. Differentiable
    in the alphas."""
    total = torch.tensor(float(table["fixed_ms"]))
    for s, alpha in enumerate(net.alphas):
        cost = torch.tensor([table["ops"][s][name] for name in net.ops], dtype=alpha.dtype)
        total = total + cells[s] * (F.softmax(alpha, dim=-1) * cost).sum()
    return total


# ---------------------------------------------------------------------- the search
@dataclass
class DartsResult:
    """What a DARTS search found: the genotype, the final alphas (softmaxed, per stage), the
    per-epoch history, the latency table (when latency-aware), and how the search ended."""

    genotype: list[Any]
    weights: list[list[list[float]]]
    history: list[dict[str, Any]]
    table: dict[str, Any] | None
    epochs: int
    seconds: float
    stopped: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _arch_loss(config: DartsConfig, net: SuperNet, table: dict[str, Any] | None):
    def loss(logits: Tensor, y: Tensor) -> Tensor:
        ce = F.cross_entropy(logits, y)
        if table is None:
            return ce
        micros = (expected_latency(net, table, config.cells) * 1000.0).clamp_min(math.e)
        return ce * config.latency_alpha * micros.log() ** config.latency_beta
    return loss


def _weights_named(net: SuperNet) -> tuple[list[str], list[nn.Parameter]]:
    arch = {id(p) for p in net.alphas}
    named = [(n, p) for n, p in net.named_parameters() if id(p) not in arch]
    return [n for n, _ in named], [p for _, p in named]


def _second_order_step(net: SuperNet, arch_loss: Any, batch_w: tuple[Tensor, Tensor], batch_a: tuple[Tensor, Tensor],
                       lr: float, weight_decay: float) -> None:
    """Set alpha's gradient by DARTS's unrolled (second-order) approximation; see the module docstring."""
    from torch.func import functional_call

    names, weights = _weights_named(net)
    alphas = list(net.alphas)
    arch = {f"alphas.{i}": a for i, a in enumerate(alphas)}
    (xw, yw), (xa, ya) = batch_w, batch_a
    grads = torch.autograd.grad(F.cross_entropy(net(xw), yw), weights)
    virtual = [(p.detach() - lr * (g + weight_decay * p.detach())).requires_grad_(True) for p, g in zip(weights, grads)]
    val = arch_loss(functional_call(net, {**dict(zip(names, virtual)), **arch}, (xa,)), ya)
    g_alpha = torch.autograd.grad(val, alphas, retain_graph=True)
    g_virtual = torch.autograd.grad(val, virtual)
    r = 0.01 / (torch.cat([g.flatten() for g in g_virtual]).norm() + 1e-12)

    def train_grad(sign: float) -> tuple[Tensor, ...]:
        moved = {n: p.detach() + sign * r * g for n, p, g in zip(names, weights, g_virtual)}
        return torch.autograd.grad(F.cross_entropy(functional_call(net, {**moved, **arch}, (xw,)), yw), alphas)

    plus, minus = train_grad(1.0), train_grad(-1.0)
    for alpha, g, p, m in zip(alphas, g_alpha, plus, minus):
        alpha.grad = g - lr * (p - m) / (2 * r)


def _halves(dataset: Any, seed: int) -> tuple[list[int], list[int]]:
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    half = len(order) // 2
    return sorted(order[:half]), sorted(order[half:])


def _loader(dataset: Any, indices: list[int], config: DartsConfig, collate: Any, seed: int) -> DataLoader:
    return DataLoader(Subset(dataset, indices), batch_size=min(config.batch_size, max(2, len(indices))), shuffle=True,
                      drop_last=True, collate_fn=collate, generator=torch.Generator().manual_seed(seed))


def _pairs(batch: Any) -> tuple[Tensor, Tensor]:
    from slimkit.modelio import split

    parts = split(batch)
    if not isinstance(parts.inputs, Tensor) or parts.targets is None:
        raise ConfigError("DARTS searches image classifiers: batches must be (images, labels)")
    return parts.inputs, parts.targets


def run_darts(config: DartsConfig, loader: DataLoader, out_dir: str | Path, *, in_channels: int, num_classes: int,
              input_size: int, seed: int = 0, timeout: float | None = None, latency: Any = None,
              log: Any = None) -> DartsResult:
    """Search ``config``'s space on ``loader``'s dataset (halves: weights and alphas), resuming
    from ``out_dir/last.pt`` and returning ``out_dir/result.json`` if a search there finished.
    ``latency`` (a ``LatencyConfig``) says how the latency table is timed."""
    from slimkit.train.runtime import seed_everything

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say = log or (lambda message: None)
    done = _finished(out, config, seed)
    if done is not None:
        say(f"darts: search already finished in {out}, reusing its result")
        return done
    seed_everything(seed)
    net = config.supernet(in_channels=in_channels, num_classes=num_classes, input_size=input_size)
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=config.lr, momentum=config.momentum,
                            weight_decay=config.weight_decay)
    a_opt = torch.optim.Adam(net.arch_parameters(), lr=config.arch_lr, betas=(0.5, 0.999),
                             weight_decay=config.arch_weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, config.epochs, eta_min=config.lr_min)
    state = _resume(out, config, seed, net, w_opt, a_opt, schedule)
    history: list[dict[str, Any]] = state["history"] if state else []
    table = state["table"] if state else None
    if config.latency and table is None:
        timing = {} if latency is None else {"warmup": latency.warmup, "repeats": max(latency.repeats, 5),
                                              "threads": latency.threads}
        table = latency_table(config, net, in_channels=in_channels, input_size=input_size, **timing)
        say(f"darts: latency table measured (fixed parts {table['fixed_ms']:.3f} ms)")
    arch_loss = _arch_loss(config, net, table)
    dataset, collate = loader.dataset, loader.collate_fn
    w_half, a_half = _halves(dataset, seed)
    started, spent = time.perf_counter(), sum(h["seconds"] for h in history)
    deadline = None if timeout is None else started + max(0.0, timeout - spent)
    stopped = "epochs"
    for epoch in range(len(history) + 1, config.epochs + 1):
        seed_everything(seed + epoch)
        began = time.perf_counter()
        net.train()
        sums = {"loss": 0.0, "correct": 0, "arch_loss": 0.0, "seen": 0, "steps": 0}
        pairs = zip(_loader(dataset, w_half, config, collate, seed * 7919 + 2 * epoch),
                    _loader(dataset, a_half, config, collate, seed * 7919 + 2 * epoch + 1))
        for raw_w, raw_a in pairs:
            (xw, yw), (xa, ya) = _pairs(raw_w), _pairs(raw_a)
            a_opt.zero_grad(set_to_none=True)
            if config.order == "second":
                _second_order_step(net, arch_loss, (xw, yw), (xa, ya), schedule.get_last_lr()[0], config.weight_decay)
                with torch.no_grad():
                    sums["arch_loss"] += float(arch_loss(net(xa), ya))
            else:
                value = arch_loss(net(xa), ya)
                value.backward()
                sums["arch_loss"] += float(value.detach())
            a_opt.step()
            w_opt.zero_grad(set_to_none=True)
            logits = net(xw)
            loss = F.cross_entropy(logits, yw)
            loss.backward()
            nn.utils.clip_grad_norm_(net.weight_parameters(), 5.0)
            w_opt.step()
            sums["loss"] += float(loss.detach()) * len(yw)
            sums["correct"] += int((logits.argmax(1) == yw).sum())
            sums["seen"] += len(yw)
            sums["steps"] += 1
            if deadline is not None and time.perf_counter() > deadline:
                stopped = "timeout"
                break
        schedule.step()
        genotype = discretize(net.alphas, config.ops, config.nodes, edges_per_node=config.edges_per_node,
                              max_skips=config.max_skips)
        row = {"epoch": epoch, "train_loss": sums["loss"] / max(1, sums["seen"]),
               "train_acc": sums["correct"] / max(1, sums["seen"]), "arch_loss": sums["arch_loss"] / max(1, sums["steps"]),
               "genotype": genotype, "seconds": time.perf_counter() - began}
        if table is not None:
            row["expected_latency_ms"] = float(expected_latency(net, table, config.cells).detach())
        history.append(row)
        say(f"darts: epoch {epoch}: train acc {row['train_acc']:.4f}, arch loss {row['arch_loss']:.4f}, genotype {genotype}")
        if stopped == "timeout":
            break
        _save(out, config, seed, net, w_opt, a_opt, schedule, history, table)
    genotype = discretize(net.alphas, config.ops, config.nodes, edges_per_node=config.edges_per_node,
                              max_skips=config.max_skips)
    weights = [F.softmax(a.detach(), dim=-1).tolist() for a in net.alphas]
    result = DartsResult(genotype, weights, history, table, len(history), sum(h["seconds"] for h in history), stopped)
    atomic_write_json(out / RESULT, {"config": config.to_dict(), "seed": seed, **result.to_dict()})
    return result


def _finished(out: Path, config: DartsConfig, seed: int) -> DartsResult | None:
    import json

    path = out / RESULT
    if not path.is_file():
        return None
    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("config") != config.to_dict() or doc.get("seed") != seed:
        raise CheckpointError(f"{path} holds a DARTS search with other settings",
                              hint="search into another folder, or delete it to search again")
    return DartsResult(**{k: doc[k] for k in ("genotype", "weights", "history", "table", "epochs", "seconds", "stopped")})


def _save(out: Path, config: DartsConfig, seed: int, net: SuperNet, w_opt: Any, a_opt: Any, schedule: Any,
          history: list[dict[str, Any]], table: dict[str, Any] | None) -> None:
    import json

    atomic_torch_save({"format": FORMAT, "config": json.dumps(config.to_dict(), sort_keys=True), "seed": seed,
                       "net": net.state_dict(), "w_opt": w_opt.state_dict(), "a_opt": a_opt.state_dict(),
                       "schedule": schedule.state_dict(), "history": json.dumps(history), "table": json.dumps(table)},
                      out / LAST)


def _resume(out: Path, config: DartsConfig, seed: int, net: SuperNet, w_opt: Any, a_opt: Any,
            schedule: Any) -> dict[str, Any] | None:
    import json

    path = out / LAST
    if not path.is_file():
        return None
    try:
        state = torch.load(path, weights_only=True)
    except Exception as exc:  # noqa: BLE001  (a truncated or foreign file)
        raise CheckpointError(f"cannot read the DARTS checkpoint {path}: {exc}",
                              hint="delete it to search again from the start") from None
    if state.get("format") != FORMAT or state.get("config") != json.dumps(config.to_dict(), sort_keys=True) \
            or state.get("seed") != seed:
        raise CheckpointError(f"{path} is a DARTS search with other settings",
                              hint="search into another folder, or delete it to search again")
    net.load_state_dict(state["net"])
    w_opt.load_state_dict(state["w_opt"])
    a_opt.load_state_dict(state["a_opt"])
    schedule.load_state_dict(state["schedule"])
    return {"history": json.loads(state["history"]), "table": json.loads(state["table"])}
