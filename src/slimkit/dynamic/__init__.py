"""Dynamic (input-dependent) inference: the computation adapts to each input.

- **Early exit** (:class:`EarlyExit`): classifier heads after chosen layers, trained by
  self-distillation from the final head; per-exit confidence thresholds calibrated on the
  validation split to a budget (points of accuracy, or mean MACs); inference stops at the first
  confident exit per sample, at batch 1 and in batches (samples that exit leave the batch).
  ``exit_report`` measures exit rates, accuracy per exit, mean MACs and mean/p90 latency against
  the same network without exits; ``export_exits`` writes ONNX segments and heads that
  :class:`OnnxEarlyExit` runs the same way.
- **Channel gating** (:class:`ChannelGating`): Feature Boosting and Suppression; suppressed
  channels are skipped at inference, so the saving is real time.

>>> from slimkit.dynamic import EarlyExit, make_dynamic
"""

from slimkit.dynamic.api import DYNAMIC, make_dynamic
from slimkit.dynamic.calibrate import ExitTable, calibrate, collect, simulate
from slimkit.dynamic.config import ChannelGating, EarlyExit
from slimkit.dynamic.early_exit import EarlyExitNet, confidence, train_exits
from slimkit.dynamic.gating import FBSConv, gate_channels, gate_pairs
from slimkit.dynamic.measure import exit_report, latency_against_static
from slimkit.dynamic.onnx_runner import OnnxEarlyExit, export_exits
from slimkit.dynamic.segments import Segmented, cut_points, resolve_layers
from slimkit.dynamic.timing import per_sample_latency, samples_of

__all__ = [
    "DYNAMIC",
    "ChannelGating",
    "EarlyExit",
    "EarlyExitNet",
    "ExitTable",
    "FBSConv",
    "OnnxEarlyExit",
    "Segmented",
    "calibrate",
    "collect",
    "confidence",
    "cut_points",
    "exit_report",
    "export_exits",
    "gate_channels",
    "gate_pairs",
    "latency_against_static",
    "make_dynamic",
    "per_sample_latency",
    "resolve_layers",
    "samples_of",
    "simulate",
    "train_exits",
]
