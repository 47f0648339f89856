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


def doomed(marker: str, victim: int, at: int, index: int):
    """``quadratic``, except that worker ``victim`` stops in its ``at``-th trial, after drawing
    its parameters, writes its PID to ``marker`` and waits there to be killed."""
    import os
    from pathlib import Path

    score = quadratic(index)
    calls = 0

    def objective(trial):
        nonlocal calls
        calls += 1
        if index == victim and calls == at:
            trial.suggest_float("x", -4.0, 4.0)  # stored at once: a retry of this trial reuses it
            Path(marker).write_text(str(os.getpid()))
            time.sleep(120)  # the test kills this worker here; if it does not, the test fails on the states
        return score(trial)

    return objective
