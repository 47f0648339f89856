"""Calibration observers: watch activations, then propose the range ``(lo, hi)`` to quantize.

Five methods, registered in :data:`OBSERVERS` by the names configs use:

- ``minmax``: the smallest and largest value seen.
- ``moving_average``: min and max of each batch, smoothed as ``r += c * (batch - r)``.
- ``percentile``: the ``100 - p`` and ``p`` percentiles of all values seen.
- ``entropy``: the clipping window whose quantized histogram is closest in KL divergence to
  the full one (TensorRT's calibration, over a signed histogram).
- ``mse``: the clipping window that minimises the squared error of quantize-dequantize.

They are plain ``nn.Module``s with no torchao dependency (torchao is slow to import); the PT2E
route wraps them (:mod:`slimkit.quantization._pt2e`). The histogram methods keep ``bins`` counts
over ``[min, max]``; when a batch widens the range, old counts move to the new bins by their
centres (a small, documented approximation, as in torch's HistogramObserver).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from slimkit.errors import DataError
from slimkit.registry import Registry

__all__ = [
    "OBSERVERS", "EntropyObserver", "HistogramObserver", "MSEObserver", "MinMaxObserver",
    "MovingAverageObserver", "PercentileObserver", "RangeObserver", "build_observer", "fake_quant",
    "qparams",
]

OBSERVERS: Registry[type[RangeObserver]] = Registry("observer")
EPS = 2.0**-12  # smallest scale, as in torchao's x86 config: avoids 0 scale on dead channels


def qparams(lo: float, hi: float, *, qmin: int = 0, qmax: int = 255, symmetric: bool = False) -> tuple[float, int]:
    """Scale and zero point mapping ``[lo, hi]`` (widened to include 0) onto ``[qmin, qmax]``.

    The same arithmetic as torch/torchao observers, so PT2E and ONNX agree with these numbers.

    >>> qparams(0.0, 1.0)
    (0.00392156862745098, 0)
    >>> qparams(-1.0, 1.0, qmin=-128, qmax=127, symmetric=True)
    (0.00784313725490196, 0)
    """
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if symmetric:
        scale = max(max(-lo, hi) / ((qmax - qmin) / 2), EPS)
        return scale, 0 if qmin < 0 else (qmin + qmax + 1) // 2
    scale = max((hi - lo) / (qmax - qmin), EPS)
    zero_point = int(min(max(qmin - round(lo / scale), qmin), qmax))
    return scale, zero_point


def fake_quant(x: np.ndarray, scale: float, zero_point: int, qmin: int, qmax: int) -> np.ndarray:
    """Quantize then dequantize ``x`` (numpy; round half to even, like torch)."""
    return (np.clip(np.round(x / scale) + zero_point, qmin, qmax) - zero_point) * scale


class RangeObserver(nn.Module):
    """Base: ``forward`` records a tensor and returns it unchanged; ``range()`` proposes ``(lo, hi)``."""

    def __init__(self, *, levels: int = 256) -> None:
        super().__init__()
        self.levels = levels
        self.register_buffer("lo", torch.tensor(math.inf))
        self.register_buffer("hi", torch.tensor(-math.inf))

    def forward(self, x: Tensor) -> Tensor:
        if x.numel():
            self.observe(x.detach().float())
        return x

    def observe(self, x: Tensor) -> None:
        lo, hi = torch.aminmax(x)
        self.lo.copy_(torch.minimum(self.lo, lo))
        self.hi.copy_(torch.maximum(self.hi, hi))

    @property
    def seen(self) -> bool:
        return bool(torch.isfinite(self.lo))

    def range(self) -> tuple[float, float]:
        """The proposed ``(lo, hi)``; DataError when no data has been observed."""
        if not self.seen:
            raise DataError(
                f"{type(self).__name__} saw no data, so it cannot choose a range",
                hint="run calibration batches through the model before converting",
            )
        return float(self.lo), float(self.hi)


@OBSERVERS.register("minmax", doc="running min and max")
class MinMaxObserver(RangeObserver):
    """The extreme values seen.

    >>> o = MinMaxObserver(); _ = o(torch.tensor([-1.0, 3.0])); _ = o(torch.tensor([5.0]))
    >>> o.range()
    (-1.0, 5.0)
    """


@OBSERVERS.register("moving_average", doc="exponential moving average of batch min and max")
class MovingAverageObserver(RangeObserver):
    """Batch minima and maxima, averaged: the first batch sets the range, later ones move it by
    ``averaging_constant`` of the difference (robust to a rare extreme batch).

    >>> o = MovingAverageObserver(averaging_constant=0.5)
    >>> for b in ([0.0, 2.0], [0.0, 4.0]): _ = o(torch.tensor(b))
    >>> o.range()
    (0.0, 3.0)
    """

    def __init__(self, *, averaging_constant: float = 0.01, levels: int = 256) -> None:
        super().__init__(levels=levels)
        self.averaging_constant = averaging_constant

    def observe(self, x: Tensor) -> None:
        lo, hi = torch.aminmax(x)
        if not self.seen:
            self.lo.copy_(lo)
            self.hi.copy_(hi)
            return
        c = self.averaging_constant
        self.lo.add_(c * (lo - self.lo))
        self.hi.add_(c * (hi - self.hi))


class HistogramObserver(RangeObserver):
    """Keeps a ``bins``-bin histogram over the running ``[min, max]``; subclasses pick a window."""

    def __init__(self, *, bins: int = 2048, levels: int = 256) -> None:
        super().__init__(levels=levels)
        self.bins = bins
        self.register_buffer("histogram", torch.zeros(bins, dtype=torch.float64))

    def observe(self, x: Tensor) -> None:
        lo, hi = (float(v) for v in torch.aminmax(x))
        old_lo, old_hi = float(self.lo), float(self.hi)
        new_lo, new_hi = min(lo, old_lo), max(hi, old_hi)
        if new_hi <= new_lo:
            new_hi = new_lo + 1e-8  # a constant tensor still needs one non-empty bin
        if self.seen and (new_lo, new_hi) != (old_lo, old_hi):
            # move old counts to the widened bins by their centres
            centres = self.edges()[:-1] + (old_hi - old_lo) / (2 * self.bins)
            moved, _ = np.histogram(centres, bins=self.bins, range=(new_lo, new_hi),
                                    weights=self.histogram.numpy())
            self.histogram.copy_(torch.from_numpy(moved))
        self.lo.fill_(new_lo)
        self.hi.fill_(new_hi)
        self.histogram.add_(torch.histc(x.double(), bins=self.bins, min=new_lo, max=new_hi))

    def edges(self) -> np.ndarray:
        return np.linspace(float(self.lo), float(self.hi), self.bins + 1)

    def windows(self, steps: int = 128) -> list[tuple[int, int]]:
        """Candidate clipping windows ``[a, b)`` in bin indices: ``[-t, t]`` cut to the data
        range, for ``steps`` thresholds ``t`` up to the largest magnitude."""
        lo, hi = float(self.lo), float(self.hi)
        width = (hi - lo) / self.bins
        amax = max(abs(lo), abs(hi))
        out = []
        for k in range(1, steps + 1):
            t = amax * k / steps
            a = int(np.clip(np.floor((max(lo, -t) - lo) / width), 0, self.bins - 1))
            b = int(np.clip(np.ceil((min(hi, t) - lo) / width), a + 1, self.bins))
            out.append((a, b))
        return sorted(set(out))

    def window_range(self, a: int, b: int) -> tuple[float, float]:
        edges = self.edges()
        return float(edges[a]), float(edges[b])


@OBSERVERS.register("percentile", doc="the (100-p) and p percentiles of the values seen")
class PercentileObserver(HistogramObserver):
    """Clips the rarest ``100 - p`` percent at each end (from the histogram: exact to one bin).

    >>> o = PercentileObserver(percentile=99.0); _ = o(torch.arange(1, 1001).float())
    >>> [round(v) for v in o.range()]
    [11, 990]
    """

    def __init__(self, *, percentile: float = 99.99, bins: int = 2048, levels: int = 256) -> None:
        super().__init__(bins=bins, levels=levels)
        self.percentile = percentile

    def range(self) -> tuple[float, float]:
        super().range()
        cdf = np.cumsum(self.histogram.numpy())
        cdf /= cdf[-1]
        q = self.percentile / 100.0
        a = int(np.searchsorted(cdf, 1.0 - q, side="right"))
        b = int(np.searchsorted(cdf, q, side="left")) + 1
        return self.window_range(min(a, b - 1), min(b, self.bins))


def _merge(hist: np.ndarray, levels: int) -> np.ndarray:
    """Merge bins into ``levels`` consecutive chunks, then spread each chunk's total evenly over
    its non-empty bins (how a quantized level is read back)."""
    chunk = (np.arange(len(hist)) * levels) // len(hist)
    nonzero = hist > 0
    totals = np.bincount(chunk, weights=hist, minlength=levels)
    counts = np.bincount(chunk, weights=nonzero, minlength=levels)
    return np.where(nonzero, totals[chunk] / np.maximum(counts[chunk], 1), 0.0)


@OBSERVERS.register("entropy", doc="window minimising KL(full || quantized) histograms")
class EntropyObserver(HistogramObserver):
    """TensorRT's entropy calibration: for each window, P is the histogram inside it with the
    clipped mass added to the edge bins, Q the same bins merged into ``levels`` levels; the
    window of least KL(P || Q) wins. Windows narrower than ``levels`` bins are not tried.

    As in NVIDIA's implementation, the bin holding zero takes its neighbour's count: the spike
    of exact zeros after a ReLU would otherwise dominate the divergence and force a wide range."""

    def range(self) -> tuple[float, float]:
        super().range()
        hist = self.histogram.numpy().copy()
        lo, hi = float(self.lo), float(self.hi)
        if lo <= 0.0 < hi:
            zero = min(int((0.0 - lo) / (hi - lo) * self.bins), self.bins - 1)
            hist[zero] = hist[zero + 1] if zero + 1 < self.bins else hist[zero - 1]
        best, best_kl = (0, self.bins), math.inf
        for a, b in self.windows():
            if b - a < self.levels:
                continue
            inside = hist[a:b]
            p = inside.copy()
            p[0] += hist[:a].sum()
            p[-1] += hist[b:].sum()
            q = _merge(inside, self.levels)
            kl = _kl(p, q)
            if kl < best_kl:
                best, best_kl = (a, b), kl
        return self.window_range(*best)


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    p = p / p.sum()
    q = q / q.sum() if q.sum() > 0 else q
    mask = p > 0
    # empty Q bins where P has mass: a large finite penalty instead of infinity
    return float(np.sum(p[mask] * (np.log(p[mask]) - np.log(np.maximum(q[mask], 1e-12)))))


@OBSERVERS.register("mse", doc="window minimising the squared quantize-dequantize error")
class MSEObserver(HistogramObserver):
    """For each window, quantize every bin centre with that window's scale and zero point and
    sum ``count * (centre - fake_quant(centre))**2``; the least total error wins.

    >>> x = torch.randn(100_000, generator=torch.Generator().manual_seed(0))
    >>> o = MSEObserver(); _ = o(x)
    >>> lo, hi = o.range(); 3.0 < hi < float(x.max())
    True
    """

    def range(self) -> tuple[float, float]:
        super().range()
        hist = self.histogram.numpy()
        edges = self.edges()
        centres = (edges[:-1] + edges[1:]) / 2
        best, best_err = (float(self.lo), float(self.hi)), math.inf
        for a, b in self.windows():
            lo, hi = self.window_range(a, b)
            scale, zero = qparams(lo, hi, qmin=0, qmax=self.levels - 1)
            err = float(np.sum(hist * (centres - fake_quant(centres, scale, zero, 0, self.levels - 1)) ** 2))
            if err < best_err:
                best, best_err = (lo, hi), err
        return best


def build_observer(name: str, *, levels: int = 256, percentile: float = 99.99,
                   averaging_constant: float = 0.01) -> RangeObserver:
    """An observer by registry name with the options that apply to it.

    >>> type(build_observer("mse")).__name__
    'MSEObserver'
    """
    cls = OBSERVERS.get(name)
    if cls is PercentileObserver:
        return cls(percentile=percentile, levels=levels)
    if cls is MovingAverageObserver:
        return cls(averaging_constant=averaging_constant, levels=levels)
    return cls(levels=levels)
