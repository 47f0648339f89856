"""``distill``: train a new student (``student``: a model source) to imitate the current model.

Beside the distilled student the stage trains the same student alone (same initialization,
same epochs, plain cross-entropy: ``compare_alone``) and reports both, so every report shows
what distillation bought. With ``auto`` it first chooses how to distill on the validation split
(``slimkit.distillation.auto``: short runs on ``search_fraction`` of the training data within
``search_budget_s`` seconds); the choice is kept in ``search.json`` so a resumed run reuses it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator
from torch import nn

from slimkit.distillation import DistillConfig
from slimkit.fileio import atomic_write_json
from slimkit.recipe.fields import ModelSource, StageConfig
from slimkit.recipe.stages.base import StageResult, stage, technique

if TYPE_CHECKING:
    from slimkit.recipe.context import StageContext


class DistillStage(StageConfig, DistillConfig):
    """Every DistillConfig field (losses, train, augment, init, ...) plus the ``student`` to build,
    ``teachers`` (more teachers beside the current model, their logits combined by
    ``teacher_weighting``), ``compare_alone`` (also train the student alone, same epochs; on by default), teacher
    ``assistants`` (TAKD: specs as in ``slimkit.distillation.TAKD``, each distilled from the one
    before, the student from the last) and the automatic choice of method: ``auto``,
    ``search_budget_s``, ``search_fraction``."""

    type: Literal["distill"] = "distill"
    student: ModelSource
    teachers: list[ModelSource] = Field(default_factory=list)
    compare_alone: bool = True
    assistants: list[dict[str, Any]] = Field(default_factory=list)
    auto: bool = False
    search_budget_s: float = Field(300.0, gt=0)
    search_fraction: float = Field(0.25, gt=0, le=1)

    @field_validator("assistants")
    @classmethod
    def _assistant_specs(cls, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from slimkit.distillation.chain import check_assistants

        return check_assistants(specs)


def _seeing(student: nn.Module, view: dict) -> nn.Module:
    """The student as it is used: always on its input view (saved and reloaded as such)."""
    from slimkit.distillation.views import Viewed, build_view
    from slimkit.export.serialize import record_change

    deployed = Viewed(student, build_view(view))
    for attribute in ("slimkit_spec", "slimkit_history"):
        if hasattr(student, attribute):
            setattr(deployed, attribute, getattr(student, attribute))
    record_change(deployed, "input_view", view=view)
    return deployed


def _viewed(config: DistillStage) -> bool:
    return config.student_view.get("name", "identity") != "identity"


def _student(ctx: StageContext, config: DistillStage) -> nn.Module:
    return ctx.build(_for_view(config.student, config.student_view, ctx))


def _for_view(source: ModelSource, view: dict, ctx: StageContext) -> ModelSource:
    """A zoo student is built for the input it sees: a downsampling view shrinks its input size."""
    from slimkit.distillation.views import build_view

    if source.registry is None or "input_size" in source.knobs or view.get("name", "identity") == "identity":
        return source
    size = build_view(view).output_size(ctx.loaders().splits.input_shape[-1])
    return source.replace(knobs={**source.knobs, "input_size": size})  # type: ignore[return-value]


@stage("distill", DistillStage, doc="distill the current model into a new, smaller student (and train it alone to compare)",
       example={"student": {"registry": "mlp", "knobs": {"hidden": [8]}}, "train": {"epochs": 1}})
def run_distill(ctx: StageContext, config: DistillStage) -> StageResult:
    chosen, search = technique(config, DistillConfig), None
    if config.auto:
        chosen, search = _choose(ctx, config, chosen)
    teacher, chain = ctx.model, []
    for k, spec in enumerate(config.assistants):  # TAKD: each assistant learns from the model before it
        from slimkit.distillation import build_assistant

        assistant = build_assistant(spec, ctx.model)
        step = ctx.distill(assistant, teacher, chosen, sub=f"assistant{k}")
        chain.append({"spec": spec, "params": sum(p.numel() for p in assistant.parameters()),
                      "best_val_acc": step.best_val_acc, "history": step.history})
        teacher = assistant.eval().requires_grad_(False)
    student = _student(ctx, config)
    extra = [ctx.build(source).eval().requires_grad_(False) for source in config.teachers]
    result = ctx.distill(student, [teacher, *extra] if extra else teacher, chosen)
    if _viewed(config):
        student = _seeing(student, config.student_view)
    info: dict[str, Any] = {"student": config.student.describe(), "teacher_cache": result.cache,
                            "best_val_acc": result.best_val_acc, **result.teacher}
    if chain:
        info["assistants"] = chain
    if search is not None:
        info["search"] = search
    if config.compare_alone:
        info.update(_alone_beside(ctx, config, chosen, student))
    return StageResult(student, history=result.history, source=config.student, info=info)


def _choose(ctx: StageContext, config: DistillStage, base: DistillConfig) -> tuple[DistillConfig, dict[str, Any]]:
    """The DistillConfig to run, chosen on validation (or read back from a previous attempt)."""
    from slimkit.distillation.auto import choose_distillation

    saved = ctx.folder / "search.json"
    if saved.is_file():
        record = json.loads(saved.read_text())
        ctx.log(f"auto: reusing the earlier choice '{record['chosen']}' from {saved.name}")
        return DistillConfig.from_dict(record["config"]), record
    loaders = ctx.loaders()
    teacher = ctx.model.eval().requires_grad_(False)
    choice = choose_distillation(lambda: _student(ctx, config), teacher, loaders.train, loaders.val,
                                 base.replace(train=ctx.train_config(base.train)), budget_s=config.search_budget_s,
                                 fraction=config.search_fraction, seed=ctx.seed)
    chosen = base.replace(**{k: getattr(choice.config, k) for k in DistillConfig.model_fields if k != "train"})
    record = {**choice.to_dict(), "config": chosen.to_dict()}
    atomic_write_json(saved, record)
    ctx.log(f"auto: chose '{choice.name}' in {choice.seconds:.0f}s: "
            + ", ".join(f"{t.name} {t.val_acc if t.val_acc is not None else t.note}" for t in choice.trials))
    return chosen, record


def _alone_beside(ctx: StageContext, config: DistillStage, chosen: DistillConfig, distilled: nn.Module) -> dict[str, Any]:
    """Train the student alone (same source, seed and epochs; cross-entropy) and compare both on
    the validation and test splits: what distillation bought, in points."""
    from slimkit.train import evaluate_loss_acc

    alone = _student(ctx, config)
    if _viewed(config):  # trained alone, the student meets the view as part of the model
        alone = _seeing(alone, config.student_view)
    fit = ctx.fit(alone, chosen.train, sub="alone")
    loaders = ctx.loaders()
    scores = {name: {"val_acc": evaluate_loss_acc(model, loaders.val)[1], "test_acc": evaluate_loss_acc(model, loaders.test)[1]}
              for name, model in (("distilled", distilled), ("alone", alone))}
    gain = 100 * (scores["distilled"]["test_acc"] - scores["alone"]["test_acc"])
    ctx.log(f"student alone: test {scores['alone']['test_acc']:.4f}; distilled: test {scores['distilled']['test_acc']:.4f} "
            f"({gain:+.2f} points)")
    return {"alone": {**scores["alone"], "epochs": len(fit.history), "history": fit.history},
            "distilled": {**scores["distilled"], "epochs": chosen.train.epochs},
            "distillation_gain_points": gain}
