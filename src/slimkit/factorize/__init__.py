"""Low-rank factorization: truncated SVD, Tucker-2 and CP (Lebedev) decompositions of layers.

>>> from slimkit.factorize import Tucker, factorize
>>> from slimkit.models import build_model
>>> net = factorize(build_model("cnn", channels=[8, 16], hidden=16, input_size=8), Tucker(ranks=[4, 4]))
>>> type(net.features[1].conv).__name__
'TuckerConv'
"""

from slimkit.factorize.apply import FactorizeReport, factorize, replay_factorize
from slimkit.factorize.config import CP, SVD, FactorizeConfig, Tucker
from slimkit.factorize.cp import CPConv
from slimkit.factorize.rank import energy_rank, vbmf_rank
from slimkit.factorize.svd import LowRankConv, LowRankLinear
from slimkit.factorize.tucker import TuckerConv

__all__ = [
    "CP",
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
