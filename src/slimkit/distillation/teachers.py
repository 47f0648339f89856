"""Ways to prepare a teacher before distilling from it: a fast int8 runtime for teachers that
must run online, a temperature-calibrated teacher, and a student that starts from the teacher.

- :func:`accelerated_teacher`: the teacher as an int8 ONNX Runtime artifact (``slimkit.quantize``
  with ``StaticInt8``). Function matching runs the teacher on every augmented batch; in int8 it
  costs a fraction of the eager fp32 forward pass.
- :func:`calibrated_teacher`: the teacher's logits divided by the temperature that minimizes its
  negative log-likelihood on held-out data (Guo et al. 2017). An over-confident teacher is a
  poor target for a small student (Cho & Hariharan 2019); calibration softens it without
  retraining.
- :func:`init_from_teacher`: the student's weights taken from the teacher, pruned to the
  student's shapes (the most important channels of every layer kept), like DistilBERT's
  initialization from its teacher. Distillation then fine-tunes from a strong start.

The int8 runtime and the structured cut come from ``slimkit.quantization`` and ``slimkit.pruning``,
which themselves recover through distillation (``slimkit.recover``). So they register their
step in :data:`PROVIDED` and distillation looks it up by name, importing the provider on first
use: distillation never imports those packages, and no import cycle forms.
"""

from __future__ import annotations

import copy
import importlib
import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from slimkit.errors import ConfigError, ModelError, SlimkitError
from slimkit.modelio import call, example_from, logits_of, make_inputs, split, to_device
from slimkit.registry import Registry

log = logging.getLogger("slimkit.distillation")

#: Steps distillation borrows from other techniques, by name: ``int8_teacher(model, loader,
#: calibration_batches)`` (slimkit.quantization) and ``cut_to_widths(model, ratios, criterion,
#: example)`` (slimkit.pruning).
PROVIDED: Registry[Callable[..., nn.Module]] = Registry("distillation step")
_PROVIDERS = {"int8_teacher": "slimkit.quantization", "cut_to_widths": "slimkit.pruning"}


def provided(name: str) -> Callable[..., nn.Module]:
    """The step ``name`` of :data:`PROVIDED`, importing the package that registers it if needed."""
    if name not in PROVIDED:
        importlib.import_module(_PROVIDERS[name])
    return PROVIDED.get(name)


def accelerated_teacher(teacher: nn.Module, loader: Iterable[Any], *, calibration_batches: int = 8) -> nn.Module:
    """``teacher`` as an int8 module (calibrated on ``calibration_batches`` batches of ``loader``)
    on the runtime measured fastest at the loader's batch size (ONNX Runtime or OpenVINO),
    called like the teacher and returning its logits on the CPU. ``teacher`` itself
    is left unchanged. Feature losses cannot read a runtime's inner layers: use it for logit
    losses only."""
    try:
        with torch.random.fork_rng(devices=[]):  # the same calibration batches on every run (and resume)
            torch.manual_seed(0)
            fast = provided("int8_teacher")(copy.deepcopy(teacher).cpu().eval(), loader, calibration_batches)
    except SlimkitError as exc:
        raise ModelError(f"the teacher cannot run as an int8 ONNX Runtime model: {str(exc).splitlines()[0]}",
                         hint="set teacher_runtime: eager") from None
    fast.runs_on_cpu = True  # ONNX Runtime runs on the CPU: the loss moves its outputs to the student's device
    return fast.eval()


class TemperatureScaled(nn.Module):
    """``teacher(x) / temperature``: the teacher's logits softened (T > 1) or sharpened (T < 1).

    >>> scaled = TemperatureScaled(nn.Identity(), 2.0)
    >>> scaled(torch.tensor([[2.0, 4.0]])).tolist()
    [[1.0, 2.0]]
    """

    def __init__(self, teacher: nn.Module, temperature: float) -> None:
        super().__init__()
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise ConfigError(f"a teacher temperature must be a number > 0, got {temperature!r}")
        self.teacher = teacher
        # A buffer, so a cache of this teacher's outputs is keyed by the temperature too.
        self.register_buffer("scale", torch.tensor(float(temperature)))
        self.runs_on_cpu = bool(getattr(teacher, "runs_on_cpu", False))

    @property
    def temperature(self) -> float:
        return float(self.scale)

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        logits = logits_of(self.teacher(*args, **kwargs))
        return logits / self.scale.to(logits.device)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:.4g}"


@torch.no_grad()
def fit_temperature(teacher: nn.Module, loader: Iterable[Any], *, max_batches: int | None = None) -> float:
    """The temperature T that minimizes the cross-entropy of ``softmax(logits / T)`` on ``loader``
    (temperature scaling, Guo et al. 2017): above 1 for an over-confident model.

    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> _ = torch.manual_seed(0); x = torch.randn(64, 2); y = (x[:, 0] > 0).long()
    >>> sharp = nn.Linear(2, 2).requires_grad_(False); _ = sharp.weight.copy_(torch.tensor([[-20.0, 0.0], [20.0, 0.0]]))
    >>> fit_temperature(sharp, DataLoader(TensorDataset(x + 0.3 * torch.randn(64, 2), y), batch_size=16)) > 1
    True
    """
    device = next((p.device for p in teacher.parameters()), torch.device("cpu"))
    was = teacher.training
    teacher.eval()
    logits, labels = [], []
    try:
        for i, raw in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            batch = split(to_device(raw, device))
            if batch.targets is None:
                raise ConfigError("calibrating the teacher needs labelled validation data",
                                  hint="pass a val_loader whose batches carry labels, or set calibrate_teacher: false")
            logits.append(logits_of(call(teacher, batch.inputs)).float().cpu())
            labels.append(batch.targets.cpu())
    finally:
        teacher.train(was)
    if not logits:
        raise ConfigError("calibrating the teacher needs validation data, but the loader is empty",
                          hint="pass a non-empty val_loader, or set calibrate_teacher: false")
    z, y = torch.cat(logits), torch.cat(labels)
    y = y.argmax(1) if y.is_floating_point() and y.dim() == 2 else y.long()
    log_t = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def calibrated_teacher(teacher: nn.Module, val_loader: Iterable[Any] | None) -> TemperatureScaled:
    """``teacher`` divided by the temperature fitted on ``val_loader`` (see :func:`fit_temperature`)."""
    if val_loader is None:
        raise ConfigError("calibrate_teacher needs validation data to fit the teacher's temperature",
                          hint="pass val_loader to distill, or set calibrate_teacher: false")
    temperature = fit_temperature(teacher, val_loader)
    log.info("teacher calibrated: logits divided by T=%.3f (fitted on the validation data)", temperature)
    return TemperatureScaled(teacher, temperature)


# ---------------------------------------------------------------------------- student init


def teacher_ratios(student: nn.Module, teacher: nn.Module) -> dict[str, float]:
    """Per-layer pruning ratios that cut ``teacher``'s convolutions and linear layers down to the
    widths of ``student``'s layers of the same name (the logits layer is never cut).

    >>> from slimkit.models import build_model
    >>> teacher_ratios(build_model("cnn", channels=[8, 16], hidden=16), build_model("cnn", channels=[16, 32], hidden=64))
    {'features.0.conv': 0.5, 'features.1.conv': 0.5, 'classifier.fc1': 0.75}
    """
    theirs = dict(teacher.named_modules())
    ratios: dict[str, float] = {}
    for name, mine in student.named_modules():
        other = theirs.get(name)
        if not isinstance(mine, (nn.Conv2d, nn.Conv1d, nn.Linear)) or type(other) is not type(mine):
            continue
        width = mine.out_channels if isinstance(mine, nn.modules.conv._ConvNd) else mine.out_features
        full = other.out_channels if isinstance(other, nn.modules.conv._ConvNd) else other.out_features  # type: ignore[union-attr]
        if width < full:
            ratios[name] = 1 - width / full
        elif width > full:
            raise ConfigError(f"init from teacher: the student's layer '{name}' is wider ({width}) than the teacher's ({full})",
                              hint="initialize from the teacher only a student that is a narrower copy of it (init: random)")
    return ratios


def init_from_teacher(student: nn.Module, teacher: nn.Module, loader: Iterable[Any] | None = None, *,
                      criterion: str = "l1") -> nn.Module:
    """Load into ``student`` (in place) the weights of ``teacher`` pruned to the student's widths.

    A shallower transformer of the same width (one layer stack, fewer layers) starts from every
    other teacher layer instead, as DistilBERT's student (:func:`init_from_layers`, ``"first"``).
    Otherwise the student must be a narrower copy of the teacher: the same layers under the same names,
    each with at most the teacher's channels (a registry model with smaller ``channels`` or
    ``hidden``, say). A copy of the teacher is pruned structurally (``slimkit.prune`` with
    per-layer ``ratios`` and ``criterion``), so the channels kept are the teacher's most
    important ones and every coupled layer (BatchNorm, the flattened classifier input) follows.
    ``loader`` gives example inputs when the teacher recorded none. On any mismatch the student
    is left unchanged and a ConfigError names the layer.

    >>> from slimkit.models import build_model
    >>> teacher, student = build_model("cnn", channels=[8, 16], hidden=32), build_model("cnn", channels=[4, 8], hidden=8)
    >>> _ = init_from_teacher(student, teacher)
    >>> bool((student.features[0].conv.weight.abs().sum((1, 2, 3)).min() > 0))
    True
    """
    from slimkit.distillation.layers import init_from_layers
    from slimkit.pruning.attention_sites import find_stacks

    depths = [[len(v) for v in find_stacks(m).values()] for m in (student, teacher)]
    if len(depths[0]) == len(depths[1]) == 1 and depths[0] != depths[1]:
        return init_from_layers(student, teacher, "first")  # a shallower transformer: DistilBERT's start
    ratios = teacher_ratios(student, teacher)
    source = copy.deepcopy(teacher).cpu().eval().requires_grad_(True)  # the pruning tracer follows autograd
    example = _example(source, student, loader)
    if ratios:
        try:
            source = provided("cut_to_widths")(source, ratios, criterion, example)
        except SlimkitError as exc:
            raise ConfigError(f"init from teacher: the teacher cannot be pruned to the student's widths: "
                              f"{str(exc).splitlines()[0]}", hint="use init: random for this pair") from None
    weights, mine = source.state_dict(), student.state_dict()
    wrong = [k for k, v in mine.items() if k not in weights or weights[k].shape != v.shape]
    if wrong:
        got = weights.get(wrong[0])
        what = "missing in the teacher" if got is None else f"{tuple(got.shape)} in the pruned teacher, " \
                                                            f"{tuple(mine[wrong[0]].shape)} in the student"
        raise ConfigError(f"init from teacher: '{wrong[0]}' is {what} ({len(wrong)} tensor(s) differ)",
                          hint="the student must be a narrower copy of the teacher (same layers, same names); "
                               "otherwise use init: random")
    device = next((p.device for p in student.parameters()), torch.device("cpu"))
    student.load_state_dict({k: weights[k].to(device) for k in mine})
    log.info("student initialized from the teacher pruned to its widths (%d layers cut)", len(ratios))
    return student


def _example(teacher: nn.Module, student: nn.Module, loader: Iterable[Any] | None) -> Any:
    """Two samples to trace the teacher with: from ``loader``, else from a recorded input spec."""
    if loader is not None:
        return example_from(loader, 2)
    for model in (teacher, student):
        spec = getattr(model, "slimkit_inputs", None)
        if spec is not None:
            return make_inputs(spec, 2)
    raise ConfigError("init from teacher needs example inputs to trace the teacher",
                      hint="pass the train loader (distill does), or build the teacher with slimkit.models.build_model")
