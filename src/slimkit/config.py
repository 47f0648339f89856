"""Base class for every typed config: validation, did-you-mean, and dict round-trips.

Configs accept and reject the same fields in Python and in YAML, because both go through
pydantic with ``extra="forbid"``. ``to_dict()`` writes the config's ``type`` (its class name)
and ``version`` beside its fields, so a saved config says what it is; reading one back accepts
and checks both.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from slimkit.errors import ConfigError
from slimkit.registry import did_you_mean

#: Every Config subclass by class name: what ``Config.parse`` builds from a ``type`` field.
CONFIG_TYPES: dict[str, type[Config]] = {}
#: The keys ``to_dict`` adds beside the fields; stage configs use ``type`` as a field instead.
META_KEYS = ("type", "version")

#: Largest seed every consumer accepts: numpy's ``np.random.seed`` and scikit-learn's
#: ``random_state`` take 0..2**32-1 (torch takes more), and a seed reaches all of them.
MAX_SEED = 2**32 - 1
#: The type of every ``seed`` field: range-checked when the config is built, so ``seed: 2**70``
#: fails at validation with a line naming the field, not at run time deep inside numpy.
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


def derive_seed(*parts: int) -> int:
    """A seed made of others (a recipe seed plus a stage number, a worker offset ...), folded
    into ``0..MAX_SEED`` so that a sum of valid seeds is still one every consumer accepts.
    Sums below ``2**32`` are unchanged.

    >>> derive_seed(3, 2), derive_seed(MAX_SEED, 2)
    (5, 1)
    """
    return sum(int(p) for p in parts) % (MAX_SEED + 1)


class Config(BaseModel):
    """A validated, immutable config. Subclass it and declare fields with defaults.

    >>> class Demo(Config):
    ...     epochs: int = 3
    >>> Demo(epochs=2).to_dict()
    {'type': 'Demo', 'version': 1, 'epochs': 2}
    >>> Demo.from_dict({"type": "Demo", "version": 1, "epochs": 2}).epochs
    2
    >>> Demo.from_dict({"epoch": 2})
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: Demo: unknown field 'epoch'. Did you mean 'epochs'?
      hint: valid fields: epochs
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
    version: ClassVar[int] = 1
    #: Old field names still read (``{old: new}``), so recipes written before a rename still run.
    renamed: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            CONFIG_TYPES[cls.__name__] = cls

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error(type(self), exc) from None

    @model_validator(mode="before")
    @classmethod
    def _accept_meta(cls, data: Any) -> Any:
        """Take back the ``type`` and ``version`` that ``to_dict`` writes (checked, then dropped),
        and read renamed fields under their new names."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        _merge_nested_defaults(cls, data)
        for old, new in cls.renamed.items():
            if old in data:
                if new in data:
                    raise ValueError(f"give '{new}' or its old name '{old}', not both")
                data[new] = data.pop(old)
        if "type" in data and "type" not in cls.model_fields:
            kind = data.pop("type")
            if kind != cls.__name__:
                raise ValueError(f"this is a {cls.__name__}, but the data says type: {kind!r}")
        if "version" in data and "version" not in cls.model_fields:
            version = data.pop("version")
            if isinstance(version, bool) or not isinstance(version, int) or version > cls.version:
                raise ValueError(f"version {version!r} is not one this slimkit reads (up to {cls.version}); "
                                 "upgrade slimkit or drop the field")
        return data

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

    @classmethod
    def parse(cls, data: dict[str, Any], *, source: str | None = None) -> Config:
        """Build the config class named by ``data["type"]`` (any subclass of ``cls``).

        >>> class Shape(Config):
        ...     sides: int = 3
        >>> Config.parse({"type": "Shape", "sides": 4}).sides
        4
        """
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise ConfigError(f"{source or cls.__name__}: a config needs a 'type' naming its class",
                              hint=f"for example {{type: {cls.__name__}, ...}}")
        kind = CONFIG_TYPES.get(data["type"])
        if kind is None or not issubclass(kind, cls):
            known = sorted(n for n, t in CONFIG_TYPES.items() if issubclass(t, cls))
            raise ConfigError(f"{source or cls.__name__}: unknown config type {data['type']!r}."
                              f"{did_you_mean(data['type'], known)}")
        return kind.from_dict(data, source=source)

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON data, preceded by ``type`` (class name) and ``version``."""
        fields = self.model_dump(mode="json")
        meta = {k: v for k, v in (("type", type(self).__name__), ("version", self.version)) if k not in fields}
        return {**meta, **fields}

    def replace(self, **changes: Any) -> Config:
        """A copy with some fields changed, validated again."""
        return type(self)(**{**self.model_dump(), **changes})


def _merge_nested_defaults(cls: type[Config], data: dict[str, Any]) -> None:
    """A nested config given as a partial mapping keeps the field's own default for what it omits:
    ``finetune: {epochs: 2}`` in a stage whose default recovery has ``lr: 1e-4`` keeps that lr."""
    for name, info in cls.model_fields.items():
        given = data.get(name)
        if not isinstance(given, dict) or info.default_factory is None:
            continue
        default = info.default_factory()  # type: ignore[call-arg]
        if not isinstance(default, Config) or default == type(default)():
            continue  # the class's own defaults apply anyway
        base = default.model_dump()
        for old, new in type(default).renamed.items():
            if old in given:
                base.pop(new, None)  # the mapping sets it under its old name
        data[name] = {**base, **given}


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
