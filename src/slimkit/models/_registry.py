"""The model registry. Kept apart from the factories so each factory module can register itself."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from slimkit.registry import Registry

#: Factories ``factory(*, in_channels=1, num_classes=10, input_size=28, **knobs) -> nn.Module``.
#: Meta per name: ``doc`` (one line), ``input_sizes`` (square sizes it is tested on) and
#: ``params`` (parameter count of the default config at 28x28, 1 channel, 10 classes).
MODELS: Registry[Callable[..., nn.Module]] = Registry("model")
