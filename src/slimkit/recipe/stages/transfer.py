"""``transfer``: fine-tune the current model on a second dataset with a new classifier head.

Images are resized to the model's input size (``resize: true``), so a Fashion-MNIST student
(28x28) moves to the 8x8 digits. The new head is recorded as a ``new_head`` change, so the saved
model reloads with it. Later stages use the new data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field
from torch import nn

from slimkit.data import DataConfig
from slimkit.errors import ConfigError
from slimkit.export.serialize import CHANGES, record_change
from slimkit.recipe.fields import StageConfig
from slimkit.recipe.stages.base import StageResult, stage, technique
from slimkit.select import select_modules
from slimkit.train import TrainConfig

if TYPE_CHECKING:
    from slimkit.recipe.context import StageContext


class TransferStage(StageConfig, TrainConfig):
    """Every TrainConfig field, plus ``data`` (the new dataset), ``head`` (the Linear layer to
    replace), ``freeze`` (globs of layers kept fixed, e.g. ``["features.*"]``) and ``resize``."""

    type: Literal["transfer"] = "transfer"
    data: DataConfig
    head: str = "classifier.out"
    freeze: list[str] = Field(default_factory=list)
    resize: bool = True


def _new_head(model: nn.Module, layer: str, num_classes: int) -> nn.Linear:
    try:
        old = model.get_submodule(layer)
    except AttributeError:
        old = None
    if not isinstance(old, nn.Linear):
        raise ConfigError(f"transfer: head '{layer}' is not a Linear layer of {type(model).__name__}",
                          hint="set head: to the name of the logits layer (classifier.out for slimkit's zoo)")
    parent, _, child = layer.rpartition(".")
    new = nn.Linear(old.in_features, num_classes)
    setattr(model.get_submodule(parent) if parent else model, child, new)
    return new


def replay_new_head(model: nn.Module, change: dict[str, Any]) -> nn.Module:
    """Rebuild a recorded head replacement (its weights come from the saved file)."""
    _new_head(model, change["layer"], int(change["num_classes"]))
    return model


if "new_head" not in CHANGES:
    CHANGES.add("new_head", replay_new_head, doc="classifier head replaced for a new dataset")


def _input_size(ctx: StageContext) -> int:
    return int(ctx.loaders().splits.input_shape[-1])


@stage("transfer", TransferStage, doc="fine-tune on a second dataset with a new head (e.g. Fashion-MNIST -> digits)",
       example={"data": {"name": "digits", "limit": 60}, "epochs": 1})
def run_transfer(ctx: StageContext, config: TransferStage) -> StageResult:
    from slimkit.recipe.context import DataState

    data = DataState(config.data, _input_size(ctx) if config.resize else None)
    loaders = ctx.loaders(data)
    model = ctx.model
    _new_head(model, config.head, loaders.splits.num_classes)
    record_change(model, "new_head", layer=config.head, num_classes=loaders.splits.num_classes)
    frozen = select_modules(model, config.freeze) if config.freeze else {}
    for module in frozen.values():
        module.requires_grad_(False)
    result = ctx.fit(model, technique(config, TrainConfig), loaders=loaders)
    model.requires_grad_(True)
    info = {"dataset": config.data.name, "classes": loaders.splits.class_names, "frozen": sorted(frozen),
            "resized_to": data.resize}
    return StageResult(model, history=result.history, info=info, data=data)
