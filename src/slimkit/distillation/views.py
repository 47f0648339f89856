"""Per-model input views for cross-modal distillation: the teacher and the student may see
different versions of each sample (the full image vs a downsampled or partly masked one).

A view is a small ``nn.Module`` built from a spec such as ``{"name": "downsample", "size": 14}``
(YAML and Python alike). ``Viewed(student, view)`` applies the student's view inside the model
the Trainer trains, so training *and* validation feed the student its own view.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slimkit.errors import ConfigError, DataError
from slimkit.export.serialize import CHANGES
from slimkit.registry import Registry, did_you_mean

VIEWS: Registry[type[View]] = Registry("input view")


class View(nn.Module):
    """Base of every view: ``forward(x)`` maps a batch (N, C, H, W) to what one model sees.

    ``deterministic`` says whether the same input always gives the same view; a teacher's
    outputs can be cached only when its view is deterministic.
    """

    name = "view"
    deterministic = True

    def spec(self) -> dict[str, Any]:
        """The spec that rebuilds this view with ``build_view``."""
        return {"name": self.name}

    def output_size(self, size: int) -> int:
        """The side length of the view of a ``size`` x ``size`` image."""
        return size


@VIEWS.register("identity", doc="the input unchanged")
class Identity(View):
    """The input unchanged.

    >>> Identity()(torch.ones(1, 1, 2, 2)).shape
    torch.Size([1, 1, 2, 2])
    """

    name = "identity"

    def forward(self, x: Tensor) -> Tensor:
        return x


@VIEWS.register("downsample", doc="resize images to size x size (area averaging, like a low-res sensor)")
class Downsample(View):
    """Resize (N, C, H, W) images to ``size`` x ``size``; area averaging when shrinking.

    >>> Downsample(size=14)(torch.ones(2, 1, 28, 28)).shape
    torch.Size([2, 1, 14, 14])
    """

    name = "downsample"

    def __init__(self, size: int) -> None:
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"view 'downsample': size must be an integer >= 1, got {size!r}")
        self.size = size

    def forward(self, x: Tensor) -> Tensor:
        _check_images(x, self.name)
        if tuple(x.shape[-2:]) == (self.size, self.size):
            return x
        mode = "area" if min(x.shape[-2:]) >= self.size else "bilinear"
        options = {} if mode == "area" else {"align_corners": False}
        return F.interpolate(x, size=(self.size, self.size), mode=mode, **options)

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size}

    def output_size(self, size: int) -> int:
        return self.size

    def extra_repr(self) -> str:
        return f"size={self.size}"


@VIEWS.register("mask", doc="zero a fraction of patch x patch squares (fixed, or random per sample)")
class Mask(View):
    """Zero a ``fraction`` of the ``patch`` x ``patch`` squares of every image.

    ``random=False`` (the default) masks the same squares in every image, drawn once from
    ``seed``: like a sensor with dead regions, and deterministic. ``random=True`` draws new
    squares per sample in training (from torch's global generator, so epochs stay
    reproducible) and uses the fixed squares in eval mode, so validation is repeatable.

    >>> m = Mask(fraction=0.5, patch=2)
    >>> x = m(torch.ones(3, 1, 8, 8))
    >>> float((x == 0).float().mean()), torch.equal(x[0], x[2])
    (0.5, True)
    """

    name = "mask"

    def __init__(self, fraction: float, patch: int = 1, random: bool = False, seed: int = 0) -> None:
        super().__init__()
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
            raise ConfigError(f"view 'mask': fraction must be in [0, 1), got {fraction!r}")
        if isinstance(patch, bool) or not isinstance(patch, int) or patch < 1:
            raise ConfigError(f"view 'mask': patch must be an integer >= 1, got {patch!r}")
        self.fraction, self.patch, self.random, self.seed = float(fraction), patch, bool(random), int(seed)
        self.deterministic = not self.random

    def forward(self, x: Tensor) -> Tensor:
        _check_images(x, self.name)
        h, w = x.shape[-2:]
        grid = (-(-h // self.patch), -(-w // self.patch))  # ceil: partial squares at the edges count
        cells = grid[0] * grid[1]
        hidden = round(self.fraction * cells)
        if self.random and self.training:
            scores = torch.rand(x.shape[0], cells, device=x.device)
        else:
            generator = torch.Generator().manual_seed(self.seed)
            scores = torch.rand(1, cells, generator=generator).to(x.device).expand(x.shape[0], -1)
        keep = torch.ones_like(scores)
        if hidden:
            keep.scatter_(1, scores.topk(hidden, dim=1).indices, 0.0)
        keep = keep.view(-1, 1, *grid)
        keep = keep.repeat_interleave(self.patch, dim=2).repeat_interleave(self.patch, dim=3)
        return x * keep[..., :h, :w].to(x.dtype)

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "fraction": self.fraction, "patch": self.patch, "random": self.random,
                "seed": self.seed}

    def extra_repr(self) -> str:
        return f"fraction={self.fraction}, patch={self.patch}, random={self.random}"


def build_view(spec: Mapping[str, Any] | View | None) -> View:
    """A view from its spec (``None`` means identity); unknown names and arguments fail early.

    >>> build_view({"name": "downsample", "size": 7})
    Downsample(size=7)
    >>> build_view({"name": "downsampel"})
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: unknown input view 'downsampel'. Did you mean 'downsample'?
      hint: known input views: downsample, identity, mask
    """
    if spec is None:
        return Identity()
    if isinstance(spec, View):
        return spec
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ConfigError(
            f"a view spec must be a mapping with a 'name', got {spec!r}",
            hint=f"for example {{'name': 'downsample', 'size': 14}}; known views: {', '.join(VIEWS.names())}",
        )
    cls = VIEWS.get(spec["name"])
    args = {k: v for k, v in spec.items() if k != "name"}
    try:
        return cls(**args)
    except TypeError as exc:
        import inspect

        valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        bad = next((k for k in args if k not in valid), None)
        what = f"unknown argument '{bad}'.{did_you_mean(bad, valid)}" if bad else str(exc)
        raise ConfigError(f"view '{spec['name']}': {what}", hint=f"arguments: {', '.join(valid) or 'none'}") from None


class Viewed(nn.Module):
    """``model(view(x))``: a model that always sees its own view (used for the student).

    With several inputs (positional or keyword) the view changes the float tensors only.
    Its ``state_dict`` keys are the model's prefixed by ``model.``; ``.model`` is the original.

    >>> net = Viewed(nn.Flatten(), Downsample(size=2))
    >>> net(torch.ones(1, 1, 4, 4)).shape
    torch.Size([1, 4])
    """

    def __init__(self, model: nn.Module, view: View) -> None:
        super().__init__()
        self.model, self.view = model, view

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        from slimkit.modelio import map_floats

        if len(args) == 1 and not kwargs and isinstance(args[0], Tensor):
            return self.model(self.view(args[0]))
        return self.model(*map_floats(tuple(args), self.view), **map_floats(kwargs, self.view))


def _check_images(x: Tensor, view: str) -> None:
    if x.dim() != 4:
        raise DataError(
            f"view '{view}' works on image batches (N, C, H, W), got shape {tuple(x.shape)}",
            hint="use the 'identity' view for feature vectors",
        )


def _replay_view(model: nn.Module, change: dict[str, Any]) -> nn.Module:
    """Loading a model that always sees an input view (a student distilled on one): wrap it again."""
    return Viewed(model, build_view(change["view"]))


if "input_view" not in CHANGES:
    CHANGES.add("input_view", _replay_view, doc="the model sees an input view first (slimkit.distillation.views)")
