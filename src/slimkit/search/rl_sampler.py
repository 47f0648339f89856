"""The REINFORCE controller as an Optuna sampler (see :mod:`slimkit.search.rl`): the policy,
its updates replayed from the study's finished episodes, and seeded draws per episode."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import optuna
import torch
import torch.nn.functional as F

from slimkit.search.rl import RLConfig

__all__ = ["ReinforceSampler"]


class ReinforceSampler(optuna.samplers.BaseSampler):
    """An Optuna sampler driven by the REINFORCE policy (see the module docstring).

    ``choices``: every parameter and its options (``SearchSpace.choices()``); ``reward``: a
    trial's reward from its stored attributes, or None to leave it out of learning.
    """

    def __init__(self, choices: Mapping[str, list[Any]], config: RLConfig, reward: Callable[[Any], float | None], *,
                 seed: int = 0) -> None:
        self.options = {name: list(values) for name, values in choices.items()}
        self.config, self.reward, self.seed = config, reward, seed
        self._fallback = optuna.samplers.RandomSampler(seed=seed)
        self._draws: dict[int, dict[str, Any]] = {}
        self._reset()

    def _reset(self) -> None:
        self.logits = {name: torch.zeros(len(values), requires_grad=True) for name, values in self.options.items()}
        self.optimizer = torch.optim.Adam(list(self.logits.values()), lr=self.config.lr)
        self.baseline: float | None = None
        self.applied: list[int] = []
        self.rewards: list[float] = []

    # ------------------------------------------------------------------ policy
    def probabilities(self) -> dict[str, list[float]]:
        """The current policy: per parameter, the probability of each option."""
        return {name: F.softmax(logits.detach(), dim=0).tolist() for name, logits in self.logits.items()}

    def _log_prob(self, params: Mapping[str, Any]) -> torch.Tensor:
        total = torch.zeros(())
        for name, logits in self.logits.items():
            total = total + F.log_softmax(logits, dim=0)[self.options[name].index(params[name])]
        return total

    def _entropy(self) -> torch.Tensor:
        return sum((-(F.softmax(z, 0) * F.log_softmax(z, 0)).sum() for z in self.logits.values()), torch.zeros(()))

    def learn(self, params: Mapping[str, Any], reward: float) -> None:
        """One REINFORCE step for an episode that drew ``params`` and earned ``reward``."""
        if self.baseline is None:
            self.baseline = reward
        advantage = reward - self.baseline
        loss = -advantage * self._log_prob(params) - self.config.entropy_weight * self._entropy()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        decay = self.config.baseline_decay
        self.baseline = decay * self.baseline + (1 - decay) * reward
        self.rewards.append(reward)

    def _episodes(self, study: optuna.Study) -> list[Any]:
        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        return sorted((t for t in done if "fixed_params" not in t.system_attrs and set(self.options) <= set(t.params)),
                      key=lambda t: t.number)

    def sync(self, study: optuna.Study) -> None:
        """Bring the policy up to date with the study's finished episodes, in trial order."""
        episodes = self._episodes(study)
        numbers = [t.number for t in episodes]
        if numbers[:len(self.applied)] != self.applied:  # another worker finished an earlier trial: replay
            self._reset()
        for trial in episodes[len(self.applied):]:
            reward = self.reward(trial)
            if reward is not None and math.isfinite(reward):
                self.learn(trial.params, float(reward))
            self.applied.append(trial.number)

    def draw(self, episode: int) -> dict[str, Any]:
        """Episode ``episode``'s candidate, drawn from the policy with its own seeded generator."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + episode)
        out = {}
        for name, logits in self.logits.items():
            index = int(torch.multinomial(F.softmax(logits.detach(), dim=0), 1, generator=generator))
            out[name] = self.options[name][index]
        return out

    # ------------------------------------------------------------------ Optuna sampler API
    def infer_relative_search_space(self, study: optuna.Study, trial: Any) -> dict[str, Any]:
        return {}

    def sample_relative(self, study: optuna.Study, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
        return {}

    def before_trial(self, study: optuna.Study, trial: Any) -> None:
        self.sync(study)
        self._draws[trial.number] = self.draw(len(self.applied))

    def sample_independent(self, study: optuna.Study, trial: Any, param_name: str, param_distribution: Any) -> Any:
        draw = self._draws.get(trial.number, {})
        if param_name in draw and param_distribution.to_internal_repr(draw[param_name]) is not None:
            return draw[param_name]
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: Any, state: Any, values: Any) -> None:
        self._draws.pop(trial.number, None)
