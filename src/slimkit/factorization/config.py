"""Typed configs for low-rank factorization; ``factorize`` dispatches on their type.

Every config names its layers by globs and takes exactly one way of choosing ranks:

- ``rank`` (or ``ranks`` for Tucker): the same fixed rank for every selected layer;
- ``energy``: per layer, the smallest rank keeping that share of the squared singular values;
- ``target_params`` / ``target_macs``: the share of the *whole model's* parameters or MACs to keep.
  Ranks are then allocated per layer by ``allocation``: ``"uniform"`` (every layer keeps the
  same share of its own cost), ``"energy"`` (one energy threshold for all layers, so layers with
  a concentrated spectrum get lower ranks) or ``"vbmf"`` (ranks proportional to the ranks that
  variational Bayesian matrix factorization estimates), solved by bisection to meet the budget;
- ``allocation="vbmf"`` alone: the VBMF-estimated rank of each layer, with no budget.

``round_to`` rounds chosen ranks to multiples (down under a budget, up for an energy target):
CPU kernels run channel counts that are multiples of 8 or 16 markedly faster.

**Minimum rank.** A target never gives a layer a rank below ``min_rank`` (8 by default), or below
its full rank when that is smaller (so a layer with 8 or fewer outputs or inputs is never cut
that way). Below about 8 a layer keeps too few directions to be recovered by fine-tuning (SVD of
a 128x4 classifier to rank 1 halved a model's accuracy), and it saves almost no time: CPU
kernels process 8 float32 lanes (AVX2) at once, so rank 3 runs about as fast as rank 8. A budget
the floors make unreachable is missed with a :class:`~slimkit.factorization.FactorizationWarning`;
an explicit ``rank`` below the floor is applied as asked, with a warning (``min_rank=1`` silences it).

**Patch embeddings** (convolutions whose stride equals their kernel: a ViT's patch projection)
are left alone unless ``include_embeddings=True``: they are a small share of a transformer's cost,
and every token the model sees goes through them. Token embeddings are lookups (``nn.Embedding``),
which factorization never selects.

**Classifier heads** (the layers whose output is the model's logits, found by tracing one forward
pass) are left alone unless ``include_head=True``: the logits layer is small, and cutting its rank
merges classes before anything else.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from slimkit.config import Config, Seed

Allocation = Literal["uniform", "energy", "vbmf"]


class _Factorization(Config):
    include: list[str] = Field(default_factory=lambda: ["*"])
    exclude: list[str] = Field(default_factory=list)
    energy: float | None = Field(None, gt=0, le=1)
    target_params: float | None = Field(None, gt=0, le=1)
    target_macs: float | None = Field(None, gt=0, le=1)
    allocation: Allocation = "uniform"
    round_to: int = Field(1, ge=1)
    min_rank: int = Field(8, ge=1)
    include_head: bool = False
    include_embeddings: bool = False
    seed: Seed = 0
    renamed: ClassVar[dict[str, str]] = {"param_ratio": "target_params", "mac_ratio": "target_macs"}

    def _fixed(self) -> object:
        return getattr(self, "rank", None)

    @model_validator(mode="after")
    def _one_target(self) -> _Factorization:
        given = [n for n in ("rank", "ranks", "energy", "target_params", "target_macs") if getattr(self, n, None) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of rank/energy/target_params/target_macs, not {given}")
        if not given and self.allocation != "vbmf":
            raise ValueError("no rank target: set rank, energy, target_params or target_macs (or allocation='vbmf')")
        if given and given[0] in ("rank", "ranks", "energy") and self.allocation != "uniform":
            raise ValueError(f"allocation='{self.allocation}' needs a global budget (target_params or target_macs), "
                             f"not {given[0]}")
        return self

    def budget(self) -> tuple[str, float] | None:
        """``("params"|"macs", ratio)`` when the config sets a global budget."""
        if self.target_params is not None:
            return "params", self.target_params
        if self.target_macs is not None:
            return "macs", self.target_macs
        return None


class SVD(_Factorization):
    """Truncated SVD of Linear layers (two Linears) and of convolutions (kxk conv to ``rank``
    channels, then a 1x1 conv back), as in Zhang et al. / Jaderberg et al.

    >>> SVD(rank=8).rank, SVD(target_macs=0.5, allocation="energy").budget()
    (8, ('macs', 0.5))
    """

    rank: int | None = Field(None, ge=1)


class Tucker(_Factorization):
    """Tucker-2 of convolutions: 1x1 to ``r_in`` channels, kxk core, 1x1 to the outputs.

    ``ranks`` is ``[r_out, r_in]``. Energy is measured on the output- and input-channel
    unfoldings of the kernel, each getting its own rank.

    >>> Tucker(ranks=[16, 8]).ranks
    (16, 8)
    """

    ranks: tuple[int, int] | None = None
    iterations: int = Field(10, ge=1)

    def _fixed(self) -> object:
        return self.ranks

    @model_validator(mode="after")
    def _positive(self) -> Tucker:
        if self.ranks is not None and min(self.ranks) < 1:
            raise ValueError(f"ranks must be positive, got {list(self.ranks)}")
        return self


class CP(_Factorization):
    """CP decomposition of convolutions (Lebedev et al. 2015): pointwise, depthwise vertical
    (kx1), depthwise horizontal (1xk), pointwise. CP has no singular-value spectrum, so it takes
    ``rank`` or a ``target_params``/``target_macs`` with uniform allocation only.

    >>> CP(target_macs=0.5).budget()
    ('macs', 0.5)
    """

    rank: int | None = Field(None, ge=1)
    iterations: int = Field(50, ge=1)

    @model_validator(mode="after")
    def _no_spectrum(self) -> CP:
        if self.energy is not None or self.allocation != "uniform":
            raise ValueError("CP takes rank, target_params or target_macs with allocation='uniform' "
                             "(a CP decomposition has no energy spectrum)")
        return self


FactorizeConfig = SVD | Tucker | CP
