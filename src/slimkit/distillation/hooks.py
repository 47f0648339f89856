"""Capture intermediate features by module path with forward hooks; the model is never edited.

Paths are qualified names from ``model.named_modules()`` (``"features.3"``), the same names
layer selection uses, so a recipe can list them in YAML. A path may end in ``":input"`` or
``":output"`` to override the capture's mode for that one layer, e.g. ``"classifier:input"``
for the penultimate embedding.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Literal

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from slimkit.errors import ConfigError, ModelError

Mode = Literal["output", "input"]
_MODES = ("output", "input")


class FeatureCapture:
    """Record the outputs (or inputs) of named submodules on every forward pass.

    Tensors land in ``features`` keyed by the path exactly as given. When a module runs more
    than once in a forward pass the last call wins. For modules that return a tuple (or take
    several inputs) the first tensor is kept; for a mapping or a Hugging Face ``ModelOutput``,
    its ``logits`` or ``last_hidden_state`` if it has one, else its first tensor. Tensors are not detached: student features
    must carry gradients.

    >>> import torch
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> with FeatureCapture(net, ["0", "2:input"]) as capture:
    ...     _ = net(torch.zeros(5, 4))
    ...     sorted((k, tuple(v.shape)) for k, v in capture.features.items())
    [('0', (5, 3)), ('2:input', (5, 3))]
    >>> any(m._forward_hooks for m in net.modules())
    False
    """

    def __init__(self, model: nn.Module, paths: Sequence[str], *, mode: Mode = "output") -> None:
        if isinstance(paths, str):
            raise ConfigError(
                f"FeatureCapture takes a list of module paths, not the single string {paths!r}",
                hint=f"write [{paths!r}]",
            )
        if mode not in _MODES:
            raise ConfigError(f"FeatureCapture: mode must be 'output' or 'input', got {mode!r}")
        self.model_name = type(model).__name__
        self.paths: tuple[str, ...] = tuple(dict.fromkeys(paths))
        self.mode = mode
        self.features: dict[str, Tensor] = {}
        self._handles: list[RemovableHandle] = []
        modules = dict(model.named_modules())
        # Resolve every path before registering anything, so a typo leaves the model untouched.
        resolved = [(key, *_split(key, mode, modules, self.model_name)) for key in self.paths]
        for key, path, where in resolved:
            hook = _make_hook(self.features, key, where)
            self._handles.append(modules[path].register_forward_hook(hook, with_kwargs=True))

    def __getitem__(self, key: str) -> Tensor:
        try:
            return self.features[key]
        except KeyError:
            if key not in self.paths:
                raise ConfigError(
                    f"FeatureCapture: '{key}' is not one of the captured paths {list(self.paths)}"
                ) from None
            raise ModelError(
                f"FeatureCapture: nothing recorded for '{key}' yet",
                hint="run a forward pass of the model first; check that it goes through this module",
            ) from None

    def __contains__(self, key: object) -> bool:
        return key in self.features

    def take(self) -> dict[str, Tensor]:
        """Return the recorded features and start afresh (so tensors aren't held across steps)."""
        taken = dict(self.features)
        self.features.clear()
        return taken

    def clear(self) -> None:
        """Forget the recorded tensors; the hooks stay."""
        self.features.clear()

    def remove(self) -> None:
        """Remove every hook and forget the tensors; safe to call twice."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.features.clear()

    @property
    def active(self) -> bool:
        """Whether the hooks are still registered."""
        return bool(self._handles)

    def __enter__(self) -> FeatureCapture:  # noqa: PYI034 (Self needs Python 3.11)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "active" if self.active else "removed"
        return f"FeatureCapture({self.model_name}, {list(self.paths)}, mode={self.mode!r}, {state})"


def _split(key: str, mode: str, modules: dict[str, nn.Module], model_name: str) -> tuple[str, str]:
    path, where = key, mode
    head, sep, tail = key.rpartition(":")
    if sep and tail in _MODES:
        path, where = head, tail
    if path not in modules:
        names = [n for n in modules if n]
        close = difflib.get_close_matches(path, names, n=5, cutoff=0.5)
        guess = f" Did you mean '{close[0]}'?" if close else ""
        listing = close or names[:20]
        raise ConfigError(
            f"{model_name} has no module '{path}' to capture.{guess}",
            hint=f"nearest module paths: {', '.join(listing)}" if close
            else f"module paths look like: {', '.join(listing)}",
        )
    return path, where


def _make_hook(store: dict[str, Tensor], key: str, where: str) -> Any:
    def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        value = (args + tuple(kwargs.values())) if where == "input" else output
        store[key] = _first_tensor(value, key, where)

    return hook


def _first_tensor(value: Any, key: str, where: str) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, Mapping):  # dict outputs, Hugging Face ModelOutput (an OrderedDict)
        for name in ("logits", "last_hidden_state"):
            if isinstance(value.get(name), Tensor):
                return value[name]
        value = tuple(value.values())
    elif not isinstance(value, (tuple, list)):
        named = next((getattr(value, n) for n in ("logits", "last_hidden_state")
                      if isinstance(getattr(value, n, None), Tensor)), None)
        if named is not None:
            return named
    if isinstance(value, (tuple, list)):
        for item in value:
            if isinstance(item, Tensor):
                return item
    raise ModelError(
        f"FeatureCapture: the {where} of '{key}' is a {type(value).__name__} with no tensor in it",
        hint="capture a module whose output (or input) is a tensor",
    )
