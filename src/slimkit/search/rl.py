"""A reinforcement-learning controller for student search: REINFORCE (Williams, 1992) over the
choices of :class:`~slimkit.search.space.SearchSpace`, as in NAS with RL (Zoph & Le, 2017),
with MnasNet's multi-objective reward (Tan et al., 2019).

The policy is one categorical distribution per choice of the space (logits, starting uniform).
Each trial draws a whole candidate from it; the trial's score gives the reward::

    reward = accuracy * (latency / target) ** w,   w = reward_alpha if latency <= target else reward_beta

(``latency`` the candidate's latency, at batch 256 when ``latency_b256_ms`` is an objective of
the search and at batch 1 otherwise; ``target`` the latency bound; without one, reward =
accuracy), and 0 for a candidate that breaks a constraint (it is not trained). After
each episode the policy takes one Adam step on ``-(reward - baseline) * log p(candidate)
- entropy_weight * H``, the baseline a moving average of past rewards.

The controller is an Optuna sampler (:class:`slimkit.search.rl_sampler.ReinforceSampler`), so a search keeps Optuna's storage, resumption, front and
summary. Its state is not stored: it is rebuilt by replaying the finished episodes of the study
in trial order (the same updates, the same result), and episode ``k`` draws with a generator
seeded by ``seed`` and ``k``. So an interrupted search, rerun, continues exactly where the
uninterrupted one would have been; with a latency term the rewards hold measured latencies,
reproducible up to timing noise.
"""

from __future__ import annotations

from pydantic import Field

from slimkit.config import Config

__all__ = ["RLConfig", "mnas_reward"]


class RLConfig(Config):
    """The REINFORCE controller (see the module docstring).

    - ``lr``: Adam's rate on the policy logits; ``baseline_decay``: the moving average's decay;
      ``entropy_weight``: a bonus that keeps the policy exploring;
    - the reward: ``latency_target_ms`` (for the latency the search optimises, see the module
      docstring; default: that latency's constraint bound when there is one) and MnasNet's exponents ``reward_alpha`` (at or under the target)
      and ``reward_beta`` (over it); 0 and -1 make the target a constraint that scales the
      reward down in proportion, -0.07 and -0.07 are MnasNet's soft trade-off.
    """

    lr: float = Field(0.1, gt=0)
    baseline_decay: float = Field(0.8, ge=0, lt=1)
    entropy_weight: float = Field(0.0, ge=0)
    latency_target_ms: float | None = Field(None, gt=0)
    reward_alpha: float = 0.0
    reward_beta: float = -1.0


def mnas_reward(accuracy: float, latency: float | None, target: float | None, alpha: float, beta: float) -> float:
    """MnasNet's reward.

    >>> mnas_reward(0.8, 2.0, 1.0, 0.0, -1.0), mnas_reward(0.8, 0.5, 1.0, 0.0, -1.0), mnas_reward(0.8, None, None, 0, -1)
    (0.4, 0.8, 0.8)
    """
    if target is None or latency is None:
        return accuracy
    return accuracy * (latency / target) ** (alpha if latency <= target else beta)
