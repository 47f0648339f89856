"""The model registry. Kept apart from the factories so each factory module can register itself."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from slimkit.registry import Registry

#: Factories ``factory(*, in_channels=1, num_classes=10, input_size=28, **knobs) -> nn.Module``.
#: Meta per name: ``doc`` (one line), ``input_sizes`` (square sizes it is tested on) and
#: ``params`` (parameter count of the default config at 28x28, 1 channel, 10 classes).
MODELS: Registry[Callable[..., nn.Module]] = Registry("model")
#: Models of other libraries that slimkit rebuilds from data (Hugging Face ``transformers``:
#: :mod:`slimkit.models.hf`). They are not zoo models: they take their own inputs (token IDs as
#: well as images) and return the library's outputs (``ModelOutput``), so code that walks
#: ``MODELS`` expecting the zoo's conventions (``features``/``classifier``, image tensors in,
#: logits out) never meets them, while ``build_model``, saved models and recipes find both.
LIBRARY_MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


def model_names() -> list[str]:
    """Every buildable model name: the zoo's and the library models'."""
    return sorted([*MODELS.names(), *LIBRARY_MODELS.names()])


def is_model(name: object) -> bool:
    """Whether ``name`` is a buildable model (zoo or library)."""
    return name in MODELS or name in LIBRARY_MODELS


def factory(name: str) -> Callable[..., nn.Module]:
    """The factory of model ``name``; a ConfigError with "did you mean" over every model if unknown."""
    if name in LIBRARY_MODELS:
        return LIBRARY_MODELS.get(name)
    if name in MODELS:
        return MODELS.get(name)
    from slimkit.errors import ConfigError
    from slimkit.registry import did_you_mean

    known = model_names()
    raise ConfigError(f"unknown model '{name}'.{did_you_mean(str(name), known)}", hint=f"known models: {', '.join(known)}")
