"""Evaluation: quality, robustness, agreement, cost and latency, and model-vs-model comparison."""

from slimkit.evaluate.agreement import agreement
from slimkit.evaluate.compare import CompareConfig, Comparison, compare
from slimkit.evaluate.cost import (
    Saver,
    artifact_bytes,
    cost,
    count_macs,
    count_nonzero,
    count_params,
)
from slimkit.evaluate.latency import fixed_threads, make_input, measure_latency
from slimkit.evaluate.memory import peak_memory, state_bytes
from slimkit.evaluate.predict import Predictions, predict
from slimkit.evaluate.quality import (
    accuracy,
    confusion,
    ece,
    per_class_accuracy,
    pr_auc,
    precision_recall_f1,
    quality,
    roc_auc,
    topk_accuracy,
)
from slimkit.evaluate.robustness import accuracy_under, robustness

__all__ = [
    "CompareConfig",
    "Comparison",
    "Predictions",
    "Saver",
    "accuracy",
    "accuracy_under",
    "agreement",
    "artifact_bytes",
    "compare",
    "confusion",
    "cost",
    "count_macs",
    "count_nonzero",
    "count_params",
    "ece",
    "fixed_threads",
    "make_input",
    "measure_latency",
    "peak_memory",
    "per_class_accuracy",
    "pr_auc",
    "precision_recall_f1",
    "predict",
    "quality",
    "robustness",
    "roc_auc",
    "state_bytes",
    "topk_accuracy",
]
