"""Picklable targets for the worker tests (spawned workers import this module by name)."""

from __future__ import annotations

import time


def quadratic(index: int):
    def objective(trial):
        x = trial.suggest_float("x", -4.0, 4.0)
        trial.set_user_attr("worker", index)
        time.sleep(0.02)
        return (x - 1.0) ** 2

    return objective


def slow(index: int):
    def objective(trial):
        trial.suggest_float("x", 0.0, 1.0)
        time.sleep(0.4)
        return 0.0

    return objective


def crash(index: int):
    def objective(trial):
        if index == 1:
            raise SystemExit(3)  # worker 1 dies hard
        return 0.0

    return objective
