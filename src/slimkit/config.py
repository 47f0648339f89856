"""Base class for every typed config: validation, did-you-mean, and dict round-trips.

Configs accept and reject the same fields in Python and in YAML, because both go through
pydantic with ``extra="forbid"``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from slimkit.errors import ConfigError
from slimkit.registry import did_you_mean


class Config(BaseModel):
    """A validated, immutable config. Subclass it and declare fields with defaults.

    >>> class Demo(Config):
    ...     epochs: int = 3
    >>> Demo(epochs=2).to_dict()
    {'epochs': 2}
    >>> Demo.from_dict({"epoch": 2})
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: Demo: unknown field 'epoch'. Did you mean 'epochs'?
      hint: valid fields: epochs
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
    version: ClassVar[int] = 1

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error(type(self), exc) from None

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str | None = None) -> Config:
        """Build from plain data (YAML, JSON, CLI); ``source`` names the file in errors."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source or cls.__name__}: expected a mapping, got {type(data).__name__}")
        try:
            return cls(**data)
        except ConfigError as exc:
            if source:
                raise ConfigError(f"{source}: {exc.args[0]}", hint=exc.hint) from None
            raise

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def replace(self, **changes: Any) -> Config:
        """A copy with some fields changed, validated again."""
        return type(self)(**{**self.model_dump(), **changes})


def config_error(cls: type[BaseModel], exc: ValidationError) -> ConfigError:
    """Turn pydantic's report into one readable line per field, with did-you-mean."""
    known = list(cls.model_fields)
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(root)"
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown field '{field}'.{did_you_mean(str(err['loc'][-1]), known)}")
        else:
            lines.append(f"field '{field}': {err['msg']} (got {err.get('input')!r})")
    return ConfigError(f"{cls.__name__}: " + "; ".join(lines), hint=f"valid fields: {', '.join(known)}")
