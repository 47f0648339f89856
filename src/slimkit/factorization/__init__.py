"""Low-rank factorization: truncated SVD, Tucker-2 and CP (Lebedev) decompositions of layers.

>>> from slimkit.factorization import Tucker, factorize
>>> from slimkit.models import build_model
>>> net = factorize(build_model("cnn", channels=[8, 16], hidden=16, input_size=8), Tucker(ranks=[4, 4]))
>>> type(net.features[1].conv).__name__
'TuckerConv'
"""

from slimkit.factorization.apply import FACTORIZE, FactorizeReport, factorize, replay_factorize
from slimkit.factorization.config import CP, SVD, FactorizeConfig, Tucker
from slimkit.factorization.cp import CPConv
from slimkit.factorization.rank import energy_rank, vbmf_rank
from slimkit.factorization.svd import LowRankConv, LowRankLinear
from slimkit.factorization.tucker import TuckerConv

__all__ = [
    "CP",
    "FACTORIZE",
    "SVD",
    "CPConv",
    "FactorizeConfig",
    "FactorizeReport",
    "LowRankConv",
    "LowRankLinear",
    "Tucker",
    "TuckerConv",
    "energy_rank",
    "factorize",
    "replay_factorize",
    "vbmf_rank",
]
