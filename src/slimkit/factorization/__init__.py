"""Low-rank factorization: truncated SVD, Tucker-2 and CP (Lebedev) decompositions of layers.

>>> from slimkit.factorization import Tucker, factorize
>>> from slimkit.models import build_model
>>> net = factorize(build_model("cnn", channels=[8, 16], hidden=16, input_size=8), Tucker(ranks=[8, 8]))
>>> type(net.features[1].conv).__name__
'TuckerConv'
"""

from slimkit.factorization.apply import (
    FACTORIZE,
    FactorizationWarning,
    FactorizeReport,
    apply_plan,
    factorize,
    replay_factorize,
)
from slimkit.factorization.blocks import CPConv, LowRankConv, LowRankLinear, TuckerConv
from slimkit.factorization.config import CP, SVD, FactorizeConfig, Tucker
from slimkit.factorization.plan import FactorizationPlan, plan_factorization
from slimkit.factorization.rank import energy_rank, vbmf_rank

__all__ = [
    "CP",
    "FACTORIZE",
    "SVD",
    "CPConv",
    "FactorizationPlan",
    "FactorizationWarning",
    "FactorizeConfig",
    "FactorizeReport",
    "LowRankConv",
    "LowRankLinear",
    "Tucker",
    "TuckerConv",
    "apply_plan",
    "energy_rank",
    "factorize",
    "plan_factorization",
    "replay_factorize",
    "vbmf_rank",
]
