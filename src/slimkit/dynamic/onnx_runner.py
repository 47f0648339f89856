"""Deploy an early-exit model as ONNX: one file per segment and per head, and a small runner.

:func:`export_exits` writes ``segment_<k>.onnx`` (k = 0..K), ``head_<k>.onnx`` (k = 0..K-1) and
``exits.json`` (exit layers, criterion, thresholds, file names) into a folder.
:class:`OnnxEarlyExit` loads that folder into ONNX Runtime sessions and runs it exactly as
:meth:`EarlyExitNet.run` does: segment by segment, each enabled head scoring the samples still
running, samples that are confident enough leaving the batch. Activations stay NumPy arrays
between sessions. Thresholds can be changed in ``exits.json`` without exporting again.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from slimkit.dynamic.early_exit import EarlyExitNet
from slimkit.errors import CheckpointError
from slimkit.evaluate.predict import eval_mode
from slimkit.fileio import atomic_write_json

__all__ = ["MANIFEST", "OnnxEarlyExit", "export_exits"]

MANIFEST = "exits.json"
FORMAT = "slimkit-early-exit-onnx"


def export_exits(net: EarlyExitNet, folder: str | Path, example_input: Tensor) -> Path:
    """Write ``net``'s segments and heads as ONNX files plus ``exits.json`` into ``folder``
    (``example_input``: a batch of model inputs, one tensor). Returns the folder."""
    from slimkit.export.onnx import export_onnx

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    segments, heads = [], []
    with eval_mode(net), torch.no_grad():
        value = example_input
        for k, segment in enumerate(net.segments):
            name = f"segment_{k}.onnx"
            export_onnx(segment, out / name, value)
            segments.append(name)
            value = segment(value)
            if k < len(net.heads):
                head = f"head_{k}.onnx"
                export_onnx(net.heads[k], out / head, value)
                heads.append(head)
    thresholds = [float(t) if math.isfinite(t) else None for t in net.thresholds.tolist()]
    atomic_write_json(out / MANIFEST, {"format": FORMAT, "version": 1, "layers": net.layers, "criterion": net.criterion,
                                       "thresholds": thresholds, "segments": segments, "heads": heads})
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _confidence(z: np.ndarray, criterion: str) -> np.ndarray:
    p = _softmax(z.astype(np.float64))
    if criterion == "maxprob":
        return p.max(axis=1)
    entropy = -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=1)
    return 1.0 - entropy / math.log(z.shape[1])


class OnnxEarlyExit:
    """Run an exported early-exit folder in ONNX Runtime (see the module docstring).

    ``__call__`` takes and returns torch tensors (so slimkit's measuring tools can time it);
    ``run`` works on NumPy and also returns the exit taken by each sample.
    """

    def __init__(self, folder: str | Path, *, threads: int = 1) -> None:
        import onnxruntime as ort

        from slimkit.export.onnx import session_options

        self.folder = Path(folder)
        path = self.folder / MANIFEST
        if not path.is_file():
            raise CheckpointError(f"no early-exit export at {folder}: {MANIFEST} is missing",
                                  hint="write one with slimkit.dynamic.export_exits")
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != FORMAT:
            raise CheckpointError(f"{path} is not an early-exit export (format {doc.get('format')!r})")
        self.layers, self.criterion = list(doc["layers"]), str(doc["criterion"])
        self.thresholds = [math.inf if t is None else float(t) for t in doc["thresholds"]]
        options = session_options(threads)

        def session(name: str) -> Any:
            return ort.InferenceSession(str(self.folder / name), options, providers=["CPUExecutionProvider"])

        self.segments = [session(name) for name in doc["segments"]]
        self.heads = [session(name) for name in doc["heads"]]
        self._inputs = [s.get_inputs()[0].name for s in self.segments]
        self._head_inputs = [s.get_inputs()[0].name for s in self.heads]

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(logits, exits)`` for the batch ``x`` (float32, NumPy)."""
        h = self.segments[0].run(None, {self._inputs[0]: x})[0]
        n = h.shape[0]
        exits = np.full(n, len(self.heads), dtype=np.int64)
        out: np.ndarray | None = None
        alive = np.arange(n)
        for k, head in enumerate(self.heads):
            if self.thresholds[k] <= 1.0:
                z = head.run(None, {self._head_inputs[k]: h})[0]
                done = _confidence(z, self.criterion) >= self.thresholds[k]
                if n == 1:
                    if done[0]:
                        exits[0] = k
                        return z, exits
                elif done.any():
                    if out is None:
                        out = np.empty((n, z.shape[1]), dtype=z.dtype)
                    out[alive[done]], exits[alive[done]] = z[done], k
                    keep = ~done
                    h, alive = np.ascontiguousarray(h[keep]), alive[keep]
                    if alive.size == 0:
                        return out, exits
            h = self.segments[k + 1].run(None, {self._inputs[k + 1]: h})[0]
        if out is None:
            return h, exits
        out[alive] = h
        return out, exits

    def __call__(self, x: Tensor) -> Tensor:
        return torch.from_numpy(self.run(np.ascontiguousarray(x.detach().cpu().float().numpy()))[0])
