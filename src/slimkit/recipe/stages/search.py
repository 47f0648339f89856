"""``search``: search a student architecture for the current model (the teacher), then distill
the chosen one fully. The study lives in the stage folder, so an interrupted stage resumes it.
``strategy`` chooses how candidates are proposed: nsga2 (default), tpe, random, rl (REINFORCE)
or darts (differentiable search; the student is then a ``dartsnet``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from slimkit.config import derive_seed
from slimkit.recipe.fields import ModelSource, StageConfig
from slimkit.recipe.stages.base import StageResult, stage, technique
from slimkit.search.nas import NASConfig
from slimkit.search.space import FAMILY

if TYPE_CHECKING:
    from slimkit.recipe.context import StageContext


class SearchStage(StageConfig, NASConfig):
    """Every NASConfig field (space, objectives, constraints, proxy, final, ...) plus how long
    to search: ``trials``, ``timeout`` (seconds), ``workers`` (processes sharing the study) and
    ``storage`` (default: a SQLite file in the stage folder; any Optuna database URL). With
    ``strategy: darts``, ``darts.epochs`` (and ``timeout``) bound the search instead of ``trials``."""

    type: Literal["search"] = "search"
    trials: int = Field(20, ge=1)
    timeout: float | None = Field(None, gt=0)
    workers: int = Field(1, ge=1)
    storage: str | None = None
    study: str = "students"


EXAMPLE = {
    "trials": 2,
    "space": {"stages": [2], "width_multipliers": [0.5, 1.0], "depths": [1], "kernels": [3], "separable": [False],
              "hidden": [8]},
    "proxy": {"train": {"epochs": 1}},
    "final": {"train": {"epochs": 1}},
    "latency": {"warmup": 0, "repeats": 2, "large_batch": 8},
}


@stage("search", SearchStage, doc="search a student architecture (Pareto front of accuracy and cost), then distill it",
       example=EXAMPLE)
def run_search(ctx: StageContext, config: SearchStage) -> StageResult:
    from slimkit.search.students import search_students

    nas = technique(config, NASConfig, seed=derive_seed(config.seed, ctx.seed))
    teacher = ctx.model.eval().requires_grad_(False)
    # Workers load their own data, which they can only do for data that is not resized in memory.
    data = ctx.data.config if config.workers > 1 and ctx.data.resize is None else ctx.loaders()
    result = search_students(teacher, data, nas, ctx.folder / "search", n_trials=config.trials, timeout=config.timeout,
                             workers=config.workers, storage=config.storage, study_name=config.study)
    ctx.log(f"search: {result.trials} trials, front of {len(result.front)}, chosen trial {result.chosen['trial']}")
    source = ModelSource(registry=result.chosen.get("family", FAMILY), knobs=dict(result.chosen["knobs"]))
    student = ctx.build(source)
    trained = ctx.distill(student, teacher, config.final)
    keys = ("trial", "accuracy", "params", "macs", "latency_b1_ms", "latency_b256_ms")
    return StageResult(student, history=trained.history, source=source,
                       info={"student": source.describe(), "trials": result.trials,
                             "strategy": nas.strategy or nas.sampler.name,
                             "chosen": {k: result.chosen[k] for k in keys},
                             "front": [{k: row[k] for k in (*keys, "knobs")} for row in result.front],
                             "bounds": result.bounds, "plot": str(result.out_dir / "front.png"),
                             "best_val_acc": trained.best_val_acc})
