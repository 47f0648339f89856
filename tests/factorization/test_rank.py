import numpy as np
import pytest

from slimkit.errors import ConfigError
from slimkit.factorization.rank import (
    Candidate,
    check_ranks,
    energy_rank,
    fraction_ranks,
    minimum_ranks,
    solve_budget,
    vbmf_rank,
)


def test_energy_rank_counts_squared_singular_values():
    s = np.array([4.0, 2.0, 1.0, 1.0])  # energies 16, 4, 1, 1 of 22
    assert [energy_rank(s, e) for e in (0.5, 16 / 22, 0.95, 1.0)] == [1, 1, 3, 4]


def test_vbmf_finds_the_planted_rank():
    rng = np.random.default_rng(1)
    m = rng.normal(size=(40, 6)) @ rng.normal(size=(6, 70)) + 0.05 * rng.normal(size=(40, 70))
    assert vbmf_rank(np.linalg.svd(m, compute_uv=False), m.shape) == 6


def _linear(name, rows, cols):
    return Candidate(name, (min(rows, cols),), [np.linspace(10, 1, min(rows, cols))], [(rows, cols)],
                     lambda r: (r[0] * (rows + cols), r[0] * (rows + cols)), (rows * cols, rows * cols))


def test_fraction_ranks_is_the_largest_rank_under_the_limit():
    cand = _linear("fc", 100, 100)  # rank r costs 200 r of 10,000
    assert fraction_ranks(cand, 0.5, "params") == (25,)
    assert fraction_ranks(cand, 0.01, "params") is None


@pytest.mark.parametrize("allocation", ["uniform", "energy", "vbmf"])
def test_budget_is_met(allocation):
    cands = [_linear("a", 100, 100), _linear("b", 50, 200)]
    budget = 0.4 * 20_000
    plan = solve_budget(cands, allocation, "params", budget, fixed=0)
    total = sum(c.cost(plan[c.name])[0] if plan[c.name] else c.original[0] for c in cands)
    assert total <= budget and total > 0.8 * budget  # as large as the budget allows, roughly


def test_unreachable_budget_gives_the_cheapest_plan_and_bad_ranks_raise():
    # factorize measures what the cheapest plan achieves and warns (tests/factorization/test_plan.py)
    assert solve_budget([_linear("a", 40, 40)], "uniform", "params", 100, fixed=1000) == {"a": (1,)}
    with pytest.raises(ConfigError, match=r"layer 'fc'.*max \[4\]"):
        check_ranks("fc", (5,), (4,))


@pytest.mark.parametrize("allocation", ["uniform", "energy", "vbmf"])
def test_no_rank_goes_below_the_floor(allocation):
    cands = [_linear("a", 60, 40), _linear("b", 30, 50)]
    for cand in cands:
        cand.min_ranks = minimum_ranks(cand.max_ranks, 8)
    plan = solve_budget(cands, allocation, "params", 1.0, fixed=0)  # asks for almost nothing
    assert plan == {"a": (8,), "b": (8,)}
    assert minimum_ranks((4, 30), 8) == (4, 8)  # a mode narrower than the floor keeps its full rank
