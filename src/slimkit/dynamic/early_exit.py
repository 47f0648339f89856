"""Early exit: classifier heads after intermediate layers; each sample leaves at the first one
that is confident enough, so easy inputs skip the rest of the network.

:class:`EarlyExitNet` wraps the network (``model``) with its exit ``heads`` and one confidence
``threshold`` per exit (a buffer: saved with the weights). In training mode, or with
``dynamic = False``, it is the plain network. In eval mode it runs segment by segment (see
:mod:`slimkit.dynamic.segments`): after each segment an enabled exit's head scores the samples
still running, those at or above the threshold take that head's prediction and leave the
batch, and the rest go on. An exit whose threshold is infinite is disabled and costs nothing.

The heads are the auxiliary heads of self-distillation (``slimkit.distillation.self_aux``) and
are trained by it: :func:`train_exits`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from slimkit.distillation.self_aux import AuxHead, self_distill
from slimkit.dynamic.segments import Segmented
from slimkit.errors import ModelError
from slimkit.modelio import call, logits_of
from slimkit.train import TrainConfig

__all__ = ["EarlyExitNet", "confidence", "train_exits"]

#: Threshold of a disabled exit: never taken, its head never run.
OFF = math.inf


def confidence(logits: Tensor, criterion: str = "maxprob") -> Tensor:
    """Per-sample confidence in [0, 1]: the top softmax probability (``maxprob``) or one minus
    the entropy divided by its maximum, log(classes) (``entropy``).

    >>> confidence(torch.tensor([[10.0, 0.0], [0.0, 0.0]])).round(decimals=3).tolist()
    [1.0, 0.5]
    >>> confidence(torch.tensor([[0.0, 0.0]]), "entropy").tolist()
    [0.0]
    """
    probs = F.softmax(logits.float(), dim=1)
    if criterion == "maxprob":
        return probs.max(dim=1).values
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(dim=1)
    return 1.0 - entropy / math.log(logits.shape[1])


class EarlyExitNet(nn.Module):
    """``model`` with exit ``heads`` after ``layers`` (see the module docstring).

    ``forward`` returns logits (batch, classes), each row from the exit that row took; ``run``
    also returns the exit index per sample (``len(heads)`` is the final exit).
    """

    def __init__(self, model: nn.Module, layers: Sequence[str], heads: Sequence[nn.Module], *,
                 criterion: str = "maxprob", thresholds: Sequence[float] | None = None) -> None:
        super().__init__()
        if len(layers) != len(heads) or not layers:
            raise ModelError(f"early exit needs one head per exit layer, got {len(heads)} heads for {list(layers)}")
        if criterion not in ("maxprob", "entropy"):
            raise ModelError(f"early exit: criterion must be 'maxprob' or 'entropy', got {criterion!r}")
        self.model = model
        self.heads = nn.ModuleList(heads)
        self.layers = list(layers)
        self.criterion = criterion
        values = [OFF] * len(layers) if thresholds is None else [float(t) for t in thresholds]
        self.register_buffer("thresholds", torch.tensor(values, dtype=torch.float32))
        self.dynamic = True
        self._cut: Segmented | None = Segmented(model, self.layers)  # fails now if a layer is no cut point
        self._fast: list[Any] | None = None
        for attr in ("slimkit_spec", "slimkit_inputs", "slimkit_history"):
            if hasattr(model, attr):
                setattr(self, attr, getattr(model, attr))

    # ------------------------------------------------------------------ segments
    @property
    def segments(self) -> list[nn.Module]:
        """The network's segments (traced again after a copy: they are not state)."""
        if self._cut is None:
            self._cut = Segmented(self.model, self.layers)
        return self._cut.segments

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = dict(state)
        state["_cut"] = state["_fast"] = None  # they refer to the model's submodules: rebuild from the copy
        return state

    def set_thresholds(self, values: Sequence[float]) -> None:
        """Set every exit's threshold (``math.inf`` disables an exit)."""
        if len(values) != len(self.heads):
            raise ModelError(f"early exit: got {len(values)} thresholds for {len(self.heads)} exits")
        self.thresholds.copy_(torch.tensor([float(v) for v in values], dtype=torch.float32))

    def enabled(self) -> list[bool]:
        """Which exits can be taken (a threshold of at most 1: confidences are in [0, 1])."""
        return [t <= 1.0 for t in self.thresholds.tolist()]

    # ------------------------------------------------------------------ forward
    def forward(self, x: Any = None, *rest: Any, **named: Any) -> Any:
        inputs = () if x is None else (x, *rest)
        if self.training or not self.dynamic:
            return self.model(*inputs, **named)
        if torch.jit.is_tracing() or torch.compiler.is_compiling() or _symbolic_tracing():
            # a trace would keep the one path its example took: the exits would be lost silently
            raise ModelError("an early-exit model cannot be traced as one graph (each sample takes its own path); "
                             "export it with slimkit.dynamic.export_exits (ONNX segments and a runner)",
                             hint="export_exits(net, folder, example) and OnnxEarlyExit(folder); or export net.model")
        return self.run(*inputs, **named)[0]

    def run(self, *inputs: Any, **named: Any) -> tuple[Tensor, Tensor]:
        """``(logits, exits)``: samples leave at the first enabled exit whose confidence reaches
        its threshold; those that leave are taken out of the batch (later segments run on fewer
        samples). At batch 1 the pass simply stops there."""
        segments = self.segments
        h = segments[0](*inputs, **named)
        thresholds = self.thresholds.tolist()
        n = h.shape[0]
        if n == 1:
            return self._run_one(h, segments, thresholds)
        exits = torch.full((n,), len(self.heads), dtype=torch.long)
        out: Tensor | None = None
        alive = torch.arange(n)
        for k, head in enumerate(self.heads):
            if thresholds[k] <= 1.0:
                z = head(h)
                done = confidence(z, self.criterion) >= thresholds[k]
                if bool(done.any()):
                    if out is None:
                        out = z.new_empty(n, z.shape[1])
                    leaving = alive[done]
                    out[leaving], exits[leaving] = z[done], k
                    keep = ~done
                    h, alive = h[keep], alive[keep]
                    if alive.numel() == 0:
                        return out, exits
            h = segments[k + 1](h)
        final = logits_of(h)
        if out is None:
            return final, exits
        out[alive] = final
        return out, exits

    def _run_one(self, h: Tensor, segments: list[nn.Module], thresholds: list[float]) -> tuple[Tensor, Tensor]:
        """One sample: as few operations as possible, since at batch 1 each costs about as much
        as the arithmetic of a small layer."""
        heads = self.fast_heads
        for k, threshold in enumerate(thresholds):
            if threshold <= 1.0:  # enabled (confidences are at most 1)
                z = heads[k](h)
                if _confident(z, self.criterion) >= threshold:
                    return z, torch.tensor([k])
            h = segments[k + 1](h)
        return logits_of(h), torch.tensor([len(thresholds)])

    @property
    def fast_heads(self) -> list[Any]:
        """Each head as a plain function where it is pool -> flatten -> linear (no module calls)."""
        if self._fast is None:
            self._fast = [_plain_head(head) for head in self.heads]
        return self._fast

    def all_logits(self, *inputs: Any, **named: Any) -> list[Tensor]:
        """Every exit's logits and the final logits for every sample (no sample leaves)."""
        segments = self.segments
        h = segments[0](*inputs, **named)
        outs = []
        for k, head in enumerate(self.heads):
            outs.append(head(h))
            h = segments[k + 1](h)
        outs.append(logits_of(h))
        return outs

    def costs(self, example: Any) -> dict[str, list[int]]:
        """Per-sample MACs of each segment and each head; ``example`` is one sample's model inputs."""
        from slimkit.evaluate import count_macs

        segments, seg, heads = self.segments, [], []
        value = example
        with torch.no_grad():
            for k, segment in enumerate(segments):
                seg.append(count_macs(segment, value))
                value = call(segment, value)
                if k < len(self.heads):
                    heads.append(count_macs(self.heads[k], value))
        return {"segments": seg, "heads": heads}

    def timings(self, example: Any, *, repeats: int = 200, warmup: int = 20, threads: int | None = 1) -> dict[str, list[float]]:
        """Median batch-1 latency (ms) of each segment and of each head with its confidence test,
        timed on this machine, all pieces taking turns (``example``: one sample's model inputs)."""
        from slimkit.dynamic.timing import per_sample_latency

        pieces: dict[str, Any] = {}
        value = example
        with torch.no_grad():
            for k, segment in enumerate(self.segments):
                pieces[f"segment{k}"] = _bound(segment, value)
                value = call(segment, value)
                if k < len(self.heads):
                    pieces[f"head{k}"] = _bound(_HeadTest(self.heads[k], self.criterion), value)
            timed = per_sample_latency(pieces, [None] * repeats, warmup=warmup, threads=threads)
        k = len(self.heads)
        return {"segments": [timed[f"segment{i}"]["median_ms"] for i in range(k + 1)],
                "heads": [timed[f"head{i}"]["median_ms"] for i in range(k)]}

    def extra_repr(self) -> str:
        shown = ", ".join(f"{t:.3f}" for t in self.thresholds.tolist())
        return f"exits={self.layers}, criterion={self.criterion!r}, thresholds=[{shown}]"


def _confident(z: Tensor, criterion: str) -> float:
    """One sample's confidence, as a number."""
    if criterion == "maxprob":
        return float(torch.softmax(z, dim=1).max())
    return float(confidence(z, criterion))


def _plain_head(head: nn.Module) -> Any:
    """``head`` as ``linear(pool(h).flatten(1))`` when that is all it is (the pool and linear
    heads of self-distillation), else the module itself."""
    body = getattr(head, "body", None)
    fc = getattr(head, "fc", None)
    if not isinstance(body, nn.Sequential) or not isinstance(fc, nn.Linear) or \
            not all(isinstance(m, (nn.AdaptiveAvgPool2d, nn.Flatten)) for m in body):
        return head
    grid = next((m.output_size for m in body if isinstance(m, nn.AdaptiveAvgPool2d)), None)

    def run(h: Tensor) -> Tensor:
        if grid is not None:
            h = F.adaptive_avg_pool2d(h, grid)
        return F.linear(h.flatten(1), fc.weight, fc.bias)

    return run


def _symbolic_tracing() -> bool:
    check = getattr(fx._symbolic_trace, "is_fx_symbolic_tracing", None) or fx._symbolic_trace.is_fx_tracing
    return bool(check())


class _HeadTest(nn.Module):
    """What an enabled exit costs: its head and the confidence test on the result."""

    def __init__(self, head: nn.Module, criterion: str) -> None:
        super().__init__()
        self.head, self.criterion = head, criterion
        self.plain = _plain_head(head)

    def forward(self, h: Tensor) -> bool:
        return _confident(self.plain(h), self.criterion) >= 0.5


def _bound(module: nn.Module, value: Any) -> Any:
    """A callable that runs ``module`` on ``value`` whatever it is given (for timing pieces)."""
    return lambda _: call(module, value)


class _Frozen(nn.Module):
    """The network with its weights and BatchNorm statistics held, so only the heads learn."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *inputs: Any, **named: Any) -> Any:
        return self.model(*inputs, **named)

    def train(self, mode: bool = True) -> _Frozen:
        super().train(mode)
        self.model.eval()
        return self


def train_exits(model: nn.Module, layers: Sequence[str], loader: Iterable[Any], config: TrainConfig, *,
                head: str = "pool", temperature: float = 3.0, alpha: float = 0.5, train_backbone: bool = False,
                val_loader: Iterable[Any] | None = None, out_dir: str | Path | None = None) -> list[AuxHead]:
    """Train one exit head per layer by self-distillation from ``model``'s final head
    (:func:`slimkit.distillation.self_distill`); with ``train_backbone`` the network learns too
    ("Be Your Own Teacher"), otherwise it stays exactly as it was. Returns the heads, in order."""
    if train_backbone:
        _, heads = self_distill(model, loader, layers=list(layers), config=config, val_loader=val_loader,
                                temperature=temperature, alpha=alpha, head=head, return_heads=True,  # type: ignore[arg-type]
                                out_dir=out_dir)
        return [heads[name] for name in layers]
    flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        _, heads = self_distill(_Frozen(model), loader, layers=[f"model.{name}" for name in layers], config=config,
                                val_loader=val_loader, temperature=temperature, alpha=alpha, head=head,  # type: ignore[arg-type]
                                return_heads=True, out_dir=out_dir)
    finally:
        for param, flag in zip(model.parameters(), flags):
            param.requires_grad_(flag)
    return [heads[f"model.{name}"] for name in layers]
