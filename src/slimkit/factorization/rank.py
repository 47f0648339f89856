"""Rank selection: energy thresholds, VBMF estimates, and a bisection that meets a global budget.

Ranks are tuples (``(r,)`` for SVD and CP, ``(r_out, r_in)`` for Tucker), so one solver serves
every method. A method describes a layer by its maximal ranks, its spectra (singular values of
the relevant unfoldings; none for CP) and a cost function ``ranks -> (params, macs)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from slimkit.errors import ConfigError
from slimkit.transform.surgery import Geometry

Ranks = tuple[int, ...]


@dataclass
class Candidate:
    """One layer that can be factorized, as the rank solver sees it."""

    name: str
    max_ranks: Ranks
    spectra: list[np.ndarray]
    shapes: list[tuple[int, int]]  # (rows, cols) of the matrix behind each spectrum, for VBMF
    cost: Callable[[Ranks], tuple[int, int]]  # factorized (params, macs)
    original: tuple[int, int]  # (params, macs) of the layer as it is
    vbmf: Ranks | None = field(default=None)
    min_ranks: Ranks = ()  # the lowest ranks a target may choose (see ``minimum_ranks``); () is 1s

    def floor(self) -> Ranks:
        return self.min_ranks or tuple(1 for _ in self.max_ranks)


def minimum_ranks(max_ranks: Ranks, min_rank: int) -> Ranks:
    """The lowest ranks a target may give a layer: ``min_rank`` per mode, or the full rank of a
    mode that is smaller (a layer that narrow is never cut).

    >>> minimum_ranks((4,), 8), minimum_ranks((64, 3), 8)
    ((4,), (8, 3))
    """
    return tuple(min(min_rank, m) for m in max_ranks)


def at_least(ranks: Ranks, floor: Ranks, max_ranks: Ranks, multiple: int = 1) -> Ranks:
    """``ranks`` raised to ``floor`` where below it (a raised rank is rounded up to ``multiple``).

    >>> at_least((2, 16), (8, 8), (64, 64)), at_least((2,), (6,), (64,), 4)
    ((8, 16), (8,))
    """
    step = max(1, multiple)
    return tuple(r if r >= f else min(m, -(-f // step) * step) for r, f, m in zip(ranks, floor, max_ranks))


def energy_rank(singular_values: np.ndarray, energy: float) -> int:
    """Smallest rank keeping ``energy`` of the sum of squared singular values.

    >>> energy_rank(np.array([3.0, 1.0, 0.0]), 0.9)
    1
    >>> energy_rank(np.array([3.0, 1.0, 0.0]), 0.95)
    2
    """
    power = np.asarray(singular_values, dtype=np.float64) ** 2
    total = power.sum()
    if total <= 0:
        return 1
    kept = np.cumsum(power) / total
    return int(min(len(power), np.searchsorted(kept, energy - 1e-12) + 1))


def _tau(x: np.ndarray, alpha: float) -> np.ndarray:
    return 0.5 * (x - (1 + alpha) + np.sqrt((x - (1 + alpha)) ** 2 - 4 * alpha))


def vbmf_rank(singular_values: np.ndarray, shape: tuple[int, int]) -> int:
    """Rank estimated by empirical variational Bayesian matrix factorization (Nakajima et al.
    2013): the noise variance is fitted from the spectrum, and only singular values above the
    resulting threshold count. Depends on the spectrum and matrix shape only.

    >>> rng = np.random.default_rng(0)
    >>> low = rng.normal(size=(60, 4)) @ rng.normal(size=(4, 80)) + 0.1 * rng.normal(size=(60, 80))
    >>> vbmf_rank(np.linalg.svd(low, compute_uv=False), low.shape)
    4
    """
    L, M = sorted(int(d) for d in shape)
    s = np.sort(np.asarray(singular_values, dtype=np.float64))[::-1][:L]
    if L < 3 or s[0] <= 0:
        return max(1, L)
    alpha = L / M
    tau_bar = 2.5129 * math.sqrt(alpha)
    x_bar = (1 + tau_bar) * (1 + alpha / tau_bar)
    h_ub = max(0, min(math.ceil(L / (1 + alpha)) - 1, L) - 1)
    upper = np.sum(s**2) / (L * M)
    lower = max(s[min(h_ub + 1, L - 1)] ** 2 / (M * x_bar), float(np.mean(s[h_ub + 1:] ** 2)) / M if h_ub + 1 < L else 0.0)
    lower = max(lower, upper * 1e-12)

    def objective(sigma2: float) -> float:
        x = s**2 / (M * sigma2)
        big, small = x[x > x_bar], x[x <= x_bar]
        tau = _tau(big, alpha)
        return float(np.sum(small - np.log(small)) + np.sum(big - tau) + np.sum(np.log((tau + 1) / big))
                     + alpha * np.sum(np.log(tau / alpha + 1)))

    from scipy.optimize import (
        minimize_scalar,  # scipy is heavy to import; only VBMF needs it
    )

    sigma2 = minimize_scalar(objective, bounds=(lower, upper), method="bounded").x if upper > lower else upper
    threshold = math.sqrt(M * sigma2 * (1 + tau_bar) * (1 + alpha / tau_bar))
    return max(1, int(np.sum(s > threshold)))


def check_ranks(name: str, ranks: Sequence[int], max_ranks: Ranks) -> Ranks:
    """``ranks`` as a tuple, or ConfigError naming the layer and the largest ranks it allows."""
    ranks = tuple(int(r) for r in ranks)
    if len(ranks) != len(max_ranks) or any(r < 1 or r > m for r, m in zip(ranks, max_ranks)):
        raise ConfigError(
            f"layer '{name}': rank {list(ranks)} is larger than the layer allows (max {list(max_ranks)})",
            hint=f"use ranks <= {list(max_ranks)}, exclude '{name}', or give a ratio or energy target",
        )
    return ranks


def _path(cand: Candidate, step: int) -> Ranks:
    # One step along the diagonal from rank 1 to the maximal ranks, so every component grows
    # in proportion and cost grows monotonically with the step.
    top = max(cand.max_ranks)
    return tuple(max(f, min(m, round(step * m / top))) for m, f in zip(cand.max_ranks, cand.floor()))


def fraction_ranks(cand: Candidate, fraction: float, kind: str) -> Ranks | None:
    """Largest ranks (along the proportional path) whose cost is at most ``fraction`` of the
    layer's own ``kind`` ("params"/"macs") cost, or None if even rank 1 costs more."""
    index = 0 if kind == "params" else 1
    limit = fraction * cand.original[index]
    lo, hi = 0, max(cand.max_ranks)
    while lo < hi:  # cost is monotone along the path: binary search the last step under the limit
        mid = (lo + hi + 1) // 2
        if cand.cost(_path(cand, mid))[index] <= limit:
            lo = mid
        else:
            hi = mid - 1
    return _path(cand, lo) if lo else None


def round_ranks(ranks: Ranks, max_ranks: Ranks, multiple: int, *, up: bool = False) -> Ranks:
    """Round each rank to a multiple of ``multiple`` (at least ``multiple``, at most the max).

    >>> round_ranks((13, 30), (64, 32), 8), round_ranks((13, 30), (64, 32), 8, up=True)
    ((8, 24), (16, 32))
    """
    if multiple <= 1:
        return ranks
    step = (lambda r: -(-r // multiple) * multiple) if up else (lambda r: r // multiple * multiple)
    return tuple(min(m, max(min(multiple, m), step(r))) for r, m in zip(ranks, max_ranks))


def _ranks_at(cand: Candidate, allocation: str, t: float, kind: str, multiple: int = 1) -> Ranks | None:
    ranks = _raw_ranks_at(cand, allocation, t, kind)
    if ranks is None:
        return None
    return at_least(round_ranks(ranks, cand.max_ranks, multiple), cand.floor(), cand.max_ranks, multiple)


def _raw_ranks_at(cand: Candidate, allocation: str, t: float, kind: str) -> Ranks | None:
    if allocation == "uniform":
        # Below the cheapest rank's share the smallest ranks are used, keeping cost monotone in t.
        return fraction_ranks(cand, t, kind) or _path(cand, 1)
    if allocation == "energy":
        return tuple(energy_rank(s, t) for s in cand.spectra)
    base = cand.vbmf or cand.max_ranks
    return tuple(max(1, min(m, round(t * v))) for v, m in zip(base, cand.max_ranks))


def worthwhile(cand: Candidate, ranks: Ranks | None, kind: str) -> bool:
    """True when the factorized layer is cheaper (in ``kind``) than the layer as it is."""
    index = 0 if kind == "params" else 1
    return ranks is not None and cand.cost(ranks)[index] < cand.original[index]


def solve_budget(cands: list[Candidate], allocation: str, kind: str, budget: float, fixed: int,
                 multiple: int = 1) -> dict[str, Ranks | None]:
    """Per-layer ranks meeting ``fixed + sum(layer costs) <= budget`` with the largest common
    parameter (fraction, energy threshold or VBMF scale), found by bisection.

    A layer whose factorized form would not be cheaper keeps its original form (``None``). No
    rank goes below a candidate's floor; when even the floors cannot meet the budget, the
    cheapest plan is returned (the caller measures what it achieved and says so).
    """
    index = 0 if kind == "params" else 1
    if allocation == "vbmf":
        for cand in cands:
            cand.vbmf = tuple(vbmf_rank(s, shape) for s, shape in zip(cand.spectra, cand.shapes))

    def plan(t: float) -> tuple[int, dict[str, Ranks | None]]:
        ranks = {c.name: _ranks_at(c, allocation, t, kind, multiple) for c in cands}
        ranks = {n: (r if worthwhile(c, r, kind) else None) for (n, r), c in zip(ranks.items(), cands)}
        total = fixed + sum(c.cost(ranks[c.name])[index] if ranks[c.name] else c.original[index] for c in cands)
        return total, ranks

    hi = 1.0 if allocation != "vbmf" else max(m / v for c in cands for m, v in zip(c.max_ranks, c.vbmf or c.max_ranks))
    lo = 0.0
    total, best = plan(0.0)
    if total > budget:
        return best
    for _ in range(40):
        mid = (lo + hi) / 2
        total, ranks = plan(mid)
        if total <= budget:
            lo, best = mid, ranks
        else:
            hi = mid
    return best


@dataclass(frozen=True)
class Method:
    """What the solver and ``factorize`` need from one decomposition (see svd.py, tucker.py, cp.py).

    ``supports`` returns why a layer cannot be factorized (or None); ``shell`` builds the
    factorized structure without weights (used when a saved model is reloaded); ``decompose``
    builds it with weights from the layer.
    """

    name: str
    supports: Callable[[nn.Module], str | None]
    max_ranks: Callable[[nn.Module], Ranks]
    spectra: Callable[[nn.Module], list[tuple[np.ndarray, tuple[int, int]]]]
    cost: Callable[[nn.Module, Geometry, Ranks], tuple[int, int]]
    shell: Callable[[nn.Module, Ranks], nn.Module]
    decompose: Callable[[nn.Module, Ranks, Any], nn.Module]


def layer_cost(module: nn.Module, geom: Geometry) -> tuple[int, int]:
    """(params, MACs per sample) of a Linear or Conv2d as it is.

    >>> layer_cost(nn.Linear(4, 3), Geometry())
    (15, 12)
    """
    params = sum(p.numel() for p in module.parameters(recurse=False))
    # weight.numel() is in*out for a Linear and out*in/groups*kh*kw for a conv: MACs per position
    return params, geom.positions * module.weight.numel()


def conv_like(conv: nn.Conv2d, in_ch: int, out_ch: int, *, kernel: tuple[int, int] | None = None,
              axis: int | None = None, groups: int = 1, bias: bool = False, pointwise: bool = False) -> nn.Conv2d:
    """A conv with ``conv``'s stride, padding and dilation, restricted to one spatial ``axis``
    (0 = vertical, 1 = horizontal) when given; ``pointwise`` gives a plain 1x1, stride-1 conv."""
    kernel = kernel or tuple(conv.kernel_size)
    stride, padding, dilation = list(conv.stride), conv.padding, list(conv.dilation)
    if pointwise:
        return nn.Conv2d(in_ch, out_ch, 1, bias=bias, device=conv.weight.device, dtype=conv.weight.dtype)
    if axis is not None and not isinstance(padding, str):
        padding = list(padding)
        other = 1 - axis
        stride[other], padding[other], dilation[other] = 1, 0, 1
        padding = tuple(padding)
    return nn.Conv2d(in_ch, out_ch, kernel, stride=tuple(stride), padding=padding, dilation=tuple(dilation),
                     groups=groups, bias=bias, padding_mode=conv.padding_mode,
                     device=conv.weight.device, dtype=conv.weight.dtype)
