"""The parts of a recipe that stages share: where a model comes from (:class:`ModelSource`),
how stages are measured (:class:`EvaluationConfig`), the targets, and the base of every stage's
config (:class:`StageConfig`). Kept apart from :mod:`slimkit.recipe.schema` (the whole Recipe),
which reads the stage registry, so that stage modules depend on this module only.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from slimkit.config import Config
from slimkit.registry import did_you_mean

#: Stage names become folder names and override prefixes: no dots, slashes or spaces.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")


class ModelSource(Config):
    """Where a model comes from: exactly one of ``registry`` (slimkit's zoo, with ``knobs``), ``run``
    (a run folder or saved-model folder) or ``factory`` (``package.module:function``, the user's
    own code, called with ``knobs`` as keyword arguments). ``run`` with ``factory`` loads a saved
    custom model whose architecture the factory builds.

    A factory is code: it is imported only when the user trusts it explicitly (``--model`` on the
    command line, or ``--trust-code`` for a recipe file; see :class:`slimkit.imports.Trust`).

    The zoo gets ``in_channels``, ``num_classes`` and ``input_size`` from the data unless set.

    >>> ModelSource(registry="cnn", knobs={"channels": [8, 16]}).kind
    'registry'
    >>> ModelSource(registry="cnm")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: ModelSource: field 'registry': Value error, unknown model 'cnm'. Did you mean 'cnn'? ...
    """

    registry: str | None = None
    knobs: dict[str, Any] = Field(default_factory=dict)
    run: str | None = None
    factory: str | None = None

    @field_validator("registry")
    @classmethod
    def _known_model(cls, name: str | None) -> str | None:
        from slimkit.models import is_model, model_names

        if name is not None and not is_model(name):
            raise ValueError(f"unknown model '{name}'.{did_you_mean(name, model_names())} Known: {', '.join(model_names())}")
        return name

    @field_validator("factory")
    @classmethod
    def _reference(cls, ref: str | None) -> str | None:
        if ref is not None and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*", ref):
            raise ValueError(f"'{ref}' is not a code reference; write it as package.module:function")
        return ref

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelSource:
        given = [k for k in ("registry", "run", "factory") if getattr(self, k) is not None]
        if len(given) != 1 and given != ["run", "factory"]:
            raise ValueError(f"give exactly one of registry, run or factory, or run with a factory "
                             f"(got {', '.join(given) or 'none'})")
        if self.knobs and self.run is not None and self.factory is None:
            raise ValueError("knobs apply to registry and factory models, not to a saved run")
        if self.registry is not None:
            from slimkit.models import model_knobs

            known = list(model_knobs(self.registry))
            for knob in self.knobs:
                if knob not in known:
                    raise ValueError(f"model '{self.registry}' has no knob '{knob}'.{did_you_mean(knob, known)} "
                                     f"Valid knobs: {', '.join(known)}")
        return self

    @property
    def kind(self) -> str:
        """``"registry"``, ``"run"`` or ``"factory"``."""
        return next(k for k in ("registry", "run", "factory") if getattr(self, k) is not None)

    def references(self) -> list[str]:
        """The code references this source would import (its factory, if any)."""
        return [self.factory] if self.factory is not None else []

    def describe(self) -> str:
        """A short human label, e.g. ``cnn(channels=[8, 16])``."""
        if self.run is not None:
            return f"run {self.run}" + (f" (built by {self.factory})" if self.factory else "")
        knobs = ", ".join(f"{k}={v}" for k, v in self.knobs.items())
        return f"{self.registry or self.factory}({knobs})"


class EvaluationConfig(Config):
    """How every stage is measured against the original: on which split, latency settings.

    ``final_repeats`` is used for the closing original-vs-final measurement behind the report's
    summary (more repeats, since that figure is the headline). ``latency: false`` skips timing
    (quality, sizes and MACs are still measured).
    """

    split: str = Field("test", pattern="^(test|val)$")
    latency: bool = True
    batch_sizes: tuple[int, ...] = (1, 256)
    warmup: int = Field(5, ge=0)
    repeats: int = Field(20, ge=1)
    final_repeats: int = Field(50, ge=1)
    threads: int | None = Field(None, ge=1)

    @field_validator("batch_sizes")
    @classmethod
    def _positive(cls, sizes: tuple[int, ...]) -> tuple[int, ...]:
        if not sizes or any(b < 1 for b in sizes):
            raise ValueError(f"batch sizes must be positive, got {list(sizes)}")
        return sizes


class Targets(Config):
    """What the final deployed artifact must reach against the original (checked in the report).

    ``size_ratio``: at least this many times smaller file; ``speedup``: at least this many times
    faster per batch size; ``accuracy_drop``: at most this many points of accuracy lost.
    """

    size_ratio: float | None = Field(None, gt=0)
    speedup: dict[int, float] = Field(default_factory=dict)
    accuracy_drop: float | None = Field(None, ge=0)


class StageConfig(Config):
    """Base of every stage's config: ``type`` (the registered stage) and an optional ``name``
    (default: the type), which names the stage's folder and its overrides."""

    type: str
    name: str | None = None

    @field_validator("name")
    @classmethod
    def _folder_safe(cls, name: str | None) -> str | None:
        if name is not None and not NAME_PATTERN.match(name):
            raise ValueError(f"stage name '{name}' may hold only letters, digits, '_' and '-' (it names a folder)")
        return name

    @property
    def label(self) -> str:
        return self.name or self.type

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        return {"type": data.pop("type"), "name": data.pop("name"), **data}
