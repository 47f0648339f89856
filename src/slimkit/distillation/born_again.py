"""Born-again networks (Furlanello et al. 2018): generations of the same architecture, each
distilled from the one before.

Generation 1 learns from the given teacher, generation k from generation k-1, each a freshly
initialised copy of the teacher's architecture trained with ``distill`` and the same
``DistillConfig``. The paper finds that later generations often beat their teacher, and that
averaging the generations' predictions helps further (``GenerationEnsemble``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from slimkit.errors import ConfigError, ModelError

if TYPE_CHECKING:  # the distillation core is imported lazily: it pulls in the whole Trainer
    from slimkit.distillation.config import DistillConfig


def fresh_copy(model: nn.Module) -> nn.Module:
    """A newly initialised model with ``model``'s architecture (trainable, in training mode).

    A registry model is rebuilt from its ``slimkit_spec`` (so it gets the zoo's initialisation)
    and its recorded structural changes are replayed (so a pruned model stays pruned). Any other
    model is deep-copied and every submodule's ``reset_parameters()`` is called; a module that
    holds parameters of its own but has no ``reset_parameters`` is an error, since it would keep
    the teacher's weights.

    >>> net = nn.Sequential(nn.Linear(3, 2))
    >>> twin = fresh_copy(net)
    >>> twin[0].weight.shape == net[0].weight.shape, torch.equal(twin[0].weight, net[0].weight)
    (True, False)
    """
    spec = getattr(model, "slimkit_spec", None)
    if isinstance(spec, dict) and spec.get("name"):
        from slimkit.export.serialize import CHANGES
        from slimkit.models import build_model

        fresh = build_model(spec["name"], **spec.get("kwargs", {}))
        history = list(getattr(model, "slimkit_history", []))
        for change in history:
            fresh = CHANGES.get(change["kind"])(fresh, change)
        if history:
            fresh.slimkit_history = history
    else:
        fresh = copy.deepcopy(model)
        for name, module in fresh.named_modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            elif any(True for _ in module.parameters(recurse=False)):
                raise ModelError(
                    f"born_again cannot re-initialise '{name or type(module).__name__}' "
                    f"({type(module).__name__}): it has parameters but no reset_parameters()",
                    hint="pass build=<a function returning a fresh student of the same architecture>",
                )
    _check_same_shapes(fresh, model)
    return fresh.requires_grad_(True).train()


def born_again(
    teacher: nn.Module,
    train_loader: Iterable[Any],
    *,
    generations: int = 2,
    config: DistillConfig | None = None,
    val_loader: Iterable[Any] | None = None,
    build: Callable[[], nn.Module] | None = None,
    out_dir: str | Path | None = None,
) -> list[nn.Module]:
    """Train ``generations`` born-again students in sequence; returns them, first to last.

    ``build()`` makes each new student (default: ``fresh_copy(teacher)``), seeded with
    ``config.train.seed + k`` for generation k, so the generations start from different,
    reproducible weights. Each generation is trained by ``slimkit.distillation.distill`` with
    ``config`` (default: ``DistillConfig()``, KD + CE); ``out_dir`` gets one sub-folder per
    generation (``gen1``, ``gen2``...). The returned models are trainable and in training mode.

    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> from slimkit.distillation.config import DistillConfig
    >>> from slimkit.models import build_model
    >>> from slimkit.train import TrainConfig
    >>> x = torch.randn(16, 1, 4, 4); loader = DataLoader(TensorDataset(x, (x.mean((1, 2, 3)) > 0).long()), batch_size=8)
    >>> teacher = build_model("mlp", input_size=4, hidden=[8], num_classes=2).eval().requires_grad_(False)
    >>> gens = born_again(teacher, loader, generations=2, config=DistillConfig(train=TrainConfig(epochs=1, progress=False)))
    >>> len(gens), all(type(g) is type(teacher) for g in gens)
    (2, True)
    """
    from slimkit.distillation.config import DistillConfig
    from slimkit.distillation.offline import run_distillation

    if isinstance(generations, bool) or not isinstance(generations, int) or generations < 1:
        raise ConfigError(f"born_again: generations must be an integer >= 1, got {generations!r}")
    config = config if config is not None else DistillConfig()
    if not isinstance(config, DistillConfig):
        raise ConfigError(f"born_again needs a DistillConfig, got {type(config).__name__}", hint="DistillConfig(train=TrainConfig(...))")
    make = build if build is not None else (lambda: fresh_copy(teacher))
    models: list[nn.Module] = []
    previous = teacher
    for k in range(1, generations + 1):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.train.seed + k)
            student = make()
        if not isinstance(student, nn.Module) or student is previous or any(student is m for m in models):
            raise ConfigError("born_again: build() must return a new nn.Module each time")
        where = Path(out_dir) / f"gen{k}" if out_dir is not None else None
        if previous is not teacher:
            previous.eval().requires_grad_(False)  # freeze quietly: it is ours, not the user's
        run_distillation(student, previous, train_loader, config, val_loader=val_loader, out_dir=where)
        if previous is not teacher:
            previous.requires_grad_(True).train()
        models.append(student)
        previous = student
    return models


class GenerationEnsemble(nn.Module):
    """Average of the generations' logits (the paper's "BANE" ensemble).

    >>> ens = GenerationEnsemble([nn.Linear(2, 3), nn.Linear(2, 3)])
    >>> ens(torch.zeros(4, 2)).shape
    torch.Size([4, 3])
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if not models:
            raise ConfigError("GenerationEnsemble needs at least one model")
        self.members = nn.ModuleList(models)

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([m(x) for m in self.members]).mean(dim=0)


def _check_same_shapes(fresh: nn.Module, model: nn.Module) -> None:
    own = {k: tuple(v.shape) for k, v in fresh.state_dict().items()}
    ref = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if own != ref:
        differ = sorted(k for k in set(own) | set(ref) if own.get(k) != ref.get(k))
        raise ModelError(
            f"born_again: the rebuilt {type(model).__name__} does not match the teacher's architecture "
            f"(differs at {differ[:5]})",
            hint="pass build=<a function returning a fresh student of the same architecture>",
        )
