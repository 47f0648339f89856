"""Named distillation methods: each a preset list of loss specs (for the CLI and the benchmark).

Feature methods add their term to Hinton KD + CE, with the weights the RepDistiller code base
(Tian et al., the CRD paper's benchmark) uses on CIFAR-100: FitNet 100, AT 1000, SP 3000,
RKD 1 (distance 25, angle 50), PKT 30000. DKD is CE + DKD (alpha 1, beta 8), as in its paper;
logit standardization is 0.1 CE + 9 KD on z-scored logits at T=2, as in its paper.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from slimkit.errors import ConfigError
from slimkit.registry import did_you_mean

METHODS: dict[str, str] = {
    "kd": "soft labels only: KD at temperature T",
    "kd+ce": "Hinton: alpha * KD + (1 - alpha) * CE",
    "fitnet": "KD+CE plus FitNets hints (adapter + MSE) on feature pairs",
    "at": "KD+CE plus attention transfer on feature pairs",
    "sp": "KD+CE plus similarity-preserving loss on feature pairs",
    "rkd": "KD+CE plus relational KD (distance + angle) on embeddings",
    "pkt": "KD+CE plus probabilistic knowledge transfer on embeddings",
    "dkd": "CE + decoupled KD (target and non-target parts)",
    "logit_std": "0.1 CE + 9 KD on per-sample standardized logits",
}
_FEATURE_TERMS: dict[str, dict[str, Any]] = {
    "fitnet": {"name": "fitnet", "weight": 100.0},
    "at": {"name": "at", "weight": 1000.0},
    "sp": {"name": "sp", "weight": 3000.0},
    "rkd": {"name": "rkd", "weight": 1.0, "distance_weight": 25.0, "angle_weight": 50.0},
    "pkt": {"name": "pkt", "weight": 30000.0},
}


def method_losses(
    method: str,
    *,
    temperature: float | None = None,
    alpha: float = 0.9,
    features: Sequence[tuple[str | None, str | None]] = (),
) -> list[dict[str, Any]]:
    """The loss specs of ``method``; feature methods get one term per (student, teacher) pair.

    ``temperature`` overrides the method's default (4 for KD/DKD, 2 for logit_std).

    >>> method_losses("kd+ce", temperature=8)
    [{'name': 'kd', 'weight': 0.9, 'temperature': 8.0}, {'name': 'ce', 'weight': 0.1}]
    >>> [s["name"] for s in method_losses("at", features=[("features.1", "features.2")])]
    ['kd', 'ce', 'at']
    """
    if method not in METHODS:
        raise ConfigError(f"unknown distillation method '{method}'.{did_you_mean(method, list(METHODS))}",
                          hint=f"methods: {', '.join(METHODS)}")
    if isinstance(alpha, bool) or not 0 <= alpha <= 1:
        raise ConfigError(f"alpha must be in [0, 1], got {alpha!r}", hint="alpha weights KD, 1 - alpha weights CE")
    temp = float(temperature) if temperature is not None else (2.0 if method == "logit_std" else 4.0)
    kd_ce = [{"name": "kd", "weight": round(alpha, 6), "temperature": temp},
             {"name": "ce", "weight": round(1.0 - alpha, 6)}]
    if method == "kd":
        return [{"name": "kd", "weight": 1.0, "temperature": temp}]
    if method == "kd+ce":
        return kd_ce
    if method == "dkd":
        return [{"name": "ce", "weight": 1.0}, {"name": "dkd", "weight": 1.0, "temperature": temp}]
    if method == "logit_std":
        return [{"name": "ce", "weight": 0.1}, {"name": "logit_std", "weight": 9.0, "temperature": temp}]
    if not features:
        raise ConfigError(f"method '{method}' needs feature pairs", hint="pass features=[(student_path, teacher_path)]")
    terms = []
    for i, (s, t) in enumerate(features):
        label = method if len(features) == 1 else f"{method}_{i}"
        terms.append({**_FEATURE_TERMS[method], "label": label, "student": s, "teacher": t})
    return kd_ce + terms


def stages(model: nn.Module) -> list[str]:
    """The module paths of ``model.features``' children (the zoo's stages/blocks), in order."""
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Module):
        return []
    return [f"features.{name}" for name, _ in features.named_children()]


def embedding(model: nn.Module) -> str | None:
    """The penultimate embedding (input of the logits layer ``classifier.out``), if there is one."""
    names = dict(model.named_modules())
    return "classifier.out:input" if "classifier.out" in names else None


def default_features(method: str, student: nn.Module, teacher: nn.Module) -> list[tuple[str | None, str | None]]:
    """Sensible (student, teacher) layer pairs for ``method`` on zoo models.

    FitNet and SP: the last stage of each. AT: every student stage with the teacher stage at the
    same relative depth. RKD and PKT: the penultimate embeddings (logits if there is none).
    """
    if method in ("rkd", "pkt"):
        return [(embedding(student), embedding(teacher))]
    s, t = stages(student), stages(teacher)
    if not s or not t:
        raise ConfigError(
            f"method '{method}' needs feature layers, but the models have no 'features' stages",
            hint="name the layers: --features student.path=teacher.path",
        )
    if method == "at":
        return [(path, t[max(0, round((i + 1) * len(t) / len(s)) - 1)]) for i, path in enumerate(s)]
    return [(s[-1], t[-1])]
