"""What a student search yields: the scored rows, the feasible Pareto front and the chosen
candidate (:class:`StudentSearch`), and the files that hold them (``front.json``, ``front.md``,
``front.png``), written by every search strategy alike."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimkit.data import Loaders
from slimkit.fileio import atomic_write_json, atomic_write_text
from slimkit.search.nas import NASConfig, StudentObjective, choose, front_of, knobs_key, remeasure, trial_rows
from slimkit.search.pareto import OBJECTIVES, front_markdown, plot_front

if TYPE_CHECKING:
    import optuna
    from torch import nn

__all__ = ["TABLE", "FrontWriter", "StudentSearch", "make_objective", "summarize"]

TABLE = ["trial", "widths", "depths", "kernels", "separable", "hidden", "accuracy", "params", "macs",
         "latency_b1_ms", "latency_b256_ms", "feasible"]


@dataclass
class StudentSearch:
    """Rows of every scored candidate, the feasible Pareto front, the chosen row, the constraint
    bounds (and the default student's cost as ``default_*``), and where the files are."""

    rows: list[dict[str, Any]]
    front: list[dict[str, Any]]
    chosen: dict[str, Any]
    bounds: dict[str, float]
    out_dir: Path
    storage: str
    study_name: str
    trials: int

    def table(self) -> str:
        """The front as a Markdown table."""
        return front_markdown(self.front, TABLE)


def make_objective(teacher: nn.Module, loaders: Loaders, config: NASConfig, out_dir: Path) -> StudentObjective:
    splits = loaders.splits
    return StudentObjective(teacher, loaders.train, loaders.val, config, input_shape=splits.input_shape,
                            num_classes=splits.num_classes, cache_dir=out_dir / "teacher_cache")


class FrontWriter:
    """Study callback: rewrite ``front.json`` after every trial (figures as measured in-search)."""

    def __init__(self, out_dir: Path, config: NASConfig) -> None:
        self.out_dir, self.config = out_dir, config

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        rows = trial_rows(study)
        front = front_of(rows, self.config.directions())
        atomic_write_json(self.out_dir / "front.json", {"final": False, "front": front, "rows": rows})


def summarize(study: optuna.Study, objective: StudentObjective, config: NASConfig, out: Path, url: str) -> StudentSearch:
    """Re-time the candidates (when ``config.remeasure``), find the front, choose, write the files."""
    rows = trial_rows(study)
    if config.remeasure and rows:
        bounds = remeasure(rows, objective)
    else:
        bounds = dict(objective.bounds())
    directions = config.directions()
    front = front_of(rows, directions)
    chosen = choose(front, directions, config.choose)
    default_key = knobs_key(config.space.knobs(config.space.default_choices()))
    default = next((r for r in rows if knobs_key(r["knobs"]) == default_key), None)
    result = StudentSearch(rows, front, chosen, bounds, out, url, study.study_name, len(study.trials))
    atomic_write_json(out / "front.json", {"final": True, "front": front, "rows": rows, "chosen": chosen,
                                           "bounds": bounds, "objectives": directions})
    atomic_write_text(out / "front.md", result.table() + "\n")
    costs = [n for n in config.objectives if n != "accuracy"]
    x = costs[0] if costs else "latency_b1_ms"
    marks = {"chosen": chosen, **({"default student": default} if default else {})}
    trained = [r for r in rows if r["trained"]]
    plot_front(trained, out / "front.png", x=x, y="accuracy", directions={x: OBJECTIVES[x], "accuracy": "maximize"},
               highlight=marks, title=f"student search: {len(trained)} candidates trained")
    return result
