"""Accuracy under input perturbations, so a compressed model's loss of robustness shows.

Two perturbations, both applied to the (already normalised) model inputs:

- Gaussian noise ``x + sigma * N(0, 1)`` at each level ``sigma``; the noise is drawn from a
  generator seeded with ``seed``, so two models see exactly the same noisy inputs.
- A circular shift by ``k`` pixels down and right (``torch.roll`` over the last two dims) of
  every image input (3-D or more); other float inputs are left as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from slimkit.errors import DataError
from slimkit.evaluate.predict import eval_mode, model_device
from slimkit.modelio import call, logits_of, map_floats, split, tensors, to_device

__all__ = ["accuracy_under", "robustness"]

Perturb = Callable[[Tensor, torch.Generator], Tensor]


def accuracy_under(
    model: nn.Module,
    loader: Iterable,
    perturb: Perturb | None = None,
    *,
    device: torch.device | str | None = None,
    seed: int = 0,
) -> float:
    """Accuracy of ``model`` over ``loader`` with ``perturb(x, generator)`` applied to each
    floating-point input tensor on the CPU (``None``: clean inputs). Integer inputs (token IDs,
    masks) are never perturbed.

    >>> data = [(torch.eye(2), torch.tensor([0, 1]))]
    >>> accuracy_under(nn.Identity(), data, lambda x, g: x.flip(1))
    0.0
    """
    device = torch.device(device) if device is not None else model_device(model)
    generator = torch.Generator().manual_seed(seed)
    correct = total = 0
    with eval_mode(model), torch.no_grad():
        for raw in loader:
            batch = split(raw)
            if batch.targets is None:
                raise DataError("robustness needs labels, and the loader's batches have none",
                                hint="yield (x, y) or a mapping with a 'labels' key")
            y, x = batch.targets, to_device(batch.inputs, "cpu")
            if perturb is not None:
                x = map_floats(x, lambda t: perturb(t, generator))
            pred = logits_of(call(model, to_device(x, device))).argmax(1).cpu()
            correct += int((pred == torch.as_tensor(y).cpu().reshape(-1)).sum())
            total += int(pred.shape[0])
    if total == 0:
        raise DataError("the loader yielded no samples", hint="check the dataset is not empty")
    return correct / total


def _noise(sigma: float) -> Perturb:
    def perturb(x: Tensor, generator: torch.Generator) -> Tensor:
        noise = torch.randn(x.shape, generator=generator, dtype=torch.float32)
        return x + sigma * noise.to(x.dtype)

    return perturb


def _shift(k: int) -> Perturb:
    def perturb(x: Tensor, generator: torch.Generator) -> Tensor:
        # Only images move: a model's other float inputs (a per-sample scale, row means) are
        # not pixels; robustness() checks that at least one input is an image.
        return torch.roll(x, shifts=(k, k), dims=(-2, -1)) if x.dim() >= 3 else x

    return perturb


def robustness(
    model: nn.Module,
    loader: Iterable,
    *,
    noise: Sequence[float] = (0.1, 0.2, 0.3),
    shift: int | Sequence[int] = 2,
    device: torch.device | str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Clean accuracy and accuracy under each perturbation.

    Keys: ``clean``, ``noise_{sigma}`` for each noise level and ``shift_{k}`` for each shift
    (``shift`` may be one int or several; 0 or ``()`` skips it). Perturbations apply to float
    inputs only; a model whose inputs are all integers (token IDs) gets ``clean`` and
    ``skipped``, which says why.

    >>> data = [(torch.eye(2), torch.tensor([0, 1]))]
    >>> r = robustness(nn.Identity(), data, noise=(0.01,), shift=())
    >>> sorted(r), r["clean"]
    (['clean', 'noise_0.01'], 1.0)
    """
    shifts = [int(k) for k in ([shift] if isinstance(shift, int) else shift) if k]
    result: dict[str, Any] = {"clean": accuracy_under(model, loader, device=device, seed=seed)}
    floats = [t for _, t in tensors(split(next(iter(loader))).inputs) if t.is_floating_point()]
    if (noise or shifts) and not floats:
        result["skipped"] = "the inputs are integers (token IDs, masks): noise and shifts apply to float inputs only"
        return result
    if shifts and not any(t.dim() >= 3 for t in floats):
        result["skipped"] = "pixel shifts need image inputs (N, C, H, W); these inputs are not images"
        shifts = []
    for sigma in noise:
        result[f"noise_{sigma:g}"] = accuracy_under(
            model, loader, _noise(float(sigma)), device=device, seed=seed
        )
    for k in shifts:
        result[f"shift_{k}"] = accuracy_under(model, loader, _shift(k), device=device, seed=seed)
    return result
