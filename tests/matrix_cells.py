"""The cells of the generality matrix (``tests/test_matrix.py``): one function per technique, run
on one zoo model (``tests/zoo.py``). Each either returns after asserting on what the technique
really did, or lets a :class:`slimkit.errors.SlimkitError` through (a refusal; the test checks it
is clean). A technique that finds nothing to do on a model leaves it unchanged and says why with a
warning; the cell returns that reason as a :class:`Unchanged`.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import zoo
from torch import nn
from torch.utils.data import DataLoader

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
#: Every zoo model is built for the matrix data: 3 classes of 1x8x8 images (or what they become).
KNOBS = {"in_channels": 1, "num_classes": 3, "input_size": 8}
#: A layer inside each model whose output a feature loss matches (teacher and student alike).
FEATURE_LAYER = {"branchy": "merge", "se": "stage2", "resnet_proj": "layer1", "mixer": "blocks.0",
                 "transformer": "encoder.layers.0", "dict_io": "body", "two_inputs": "body"}


class Unchanged(str):
    """A cell's outcome when the technique had nothing to do on the model and warned why."""


class Data:
    """The matrix data for one zoo model: train and test loaders in the form the model takes."""

    def __init__(self, name: str, splits: Any, root: Path) -> None:
        self.name, self.splits, self.root = name, splits, root
        self.train = DataLoader(zoo.adapt(name, splits.train), batch_size=16)
        self.test = DataLoader(zoo.adapt(name, splits.test), batch_size=16)

    def inputs(self) -> Any:
        from slimkit.modelio import split

        return split(next(iter(self.test))).inputs

    def build(self, seed: int = 0, **knobs: Any) -> nn.Module:
        torch.manual_seed(seed)
        return zoo.build(self.name, **KNOBS, **knobs).eval()


def logits(model: nn.Module, x: Any) -> torch.Tensor:
    from slimkit.modelio import forward_logits

    model.eval()  # not chained: a PT2E int8 graph's eval() returns None
    with torch.no_grad():
        return forward_logits(model, x)


def _macs(model: nn.Module, data: Data) -> int:
    from slimkit.evaluate import count_macs
    from slimkit.modelio import take

    return count_macs(model, take(data.inputs(), 1))


def _warned(category: type[Warning], run: Callable[[], Any]) -> tuple[Any, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run()
    return result, [str(w.message) for w in caught if issubclass(w.category, category)]


# ------------------------------------------------------------------------------ pruning
def structured(data: Data) -> None:
    from slimkit.export import report_of
    from slimkit.pruning import StructuredPruning, prune

    model = data.build()
    before, x = _macs(model, data), data.inputs()
    shape = logits(model, x).shape
    prune(model, StructuredPruning(target_macs=0.5), data.train)
    reached = _macs(model, data) / before
    assert reached <= 0.55, f"MACs only down to {reached:.2f}"
    assert report_of(model, "prune")["achieved"] == reached or abs(report_of(model, "prune")["achieved"] - reached) < 1e-6
    assert logits(model, x).shape == shape


def unstructured(data: Data) -> None:
    from slimkit.pruning import UnstructuredPruning, prune

    model = data.build()
    x = data.inputs()
    out = prune(model, UnstructuredPruning(amount=0.5), data.train)
    weights = [m.weight for m in out.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert 0.45 <= zeros <= 0.55, f"{zeros:.2f} of the weights are zero"
    assert logits(out, x).isfinite().all()


# ------------------------------------------------------------------------------ quantization
def _int8_artifact(q: nn.Module, model: nn.Module, data: Data, op: str) -> None:
    from slimkit.export import OrtModule, onnx_ops, report_of

    assert isinstance(q, OrtModule), type(q)
    assert onnx_ops(q).get(op, 0) >= 1, onnx_ops(q)
    assert report_of(q, "quantize")["parity"]["passed"]
    x = data.inputs()
    got, want = logits(q, x), logits(model, x)
    assert got.shape == want.shape and (got.argmax(1) == want.argmax(1)).float().mean() >= 0.8


def static_int8(data: Data) -> None:
    from slimkit.quantization import StaticInt8, quantize

    model = data.build()
    q = quantize(copy.deepcopy(model), StaticInt8(backend="onnxruntime", calibration_batches=2), data.train)
    _int8_artifact(q, model, data, "QuantizeLinear")


def dynamic_int8(data: Data) -> None:
    from slimkit.quantization import DynamicInt8, quantize

    model = data.build()
    q, _ = _warned(UserWarning, lambda: quantize(copy.deepcopy(model), DynamicInt8(), data.train))
    _int8_artifact(q, model, data, "MatMulInteger")


def qat(data: Data) -> None:
    """QAT converts like static int8 (whose cell checks the ONNX Runtime artifact): here the
    PyTorch int8 reference graph, so the matrix spends its time on the training, not a second export."""
    from slimkit.distillation import RecoveryConfig
    from slimkit.export import report_of
    from slimkit.quantization import QAT, quantize

    model = data.build()
    config = QAT(backend="x86", compile=False, calibration_batches=2, recovery=RecoveryConfig(epochs=1, lr=1e-4))
    q = quantize(copy.deepcopy(model), config, data.train)
    ops = [str(node.target) for node in q.graph.nodes if node.op == "call_function"]
    assert sum("quantize_per_tensor" in op for op in ops) >= 2, ops  # int8 activations around the layers
    assert report_of(q, "quantize")["quantized_layers"]
    x = data.inputs()
    got, want = logits(q, x), logits(model, x)
    assert got.shape == want.shape and got.isfinite().all()


# ------------------------------------------------------------------------------ factorization
def _factorize(data: Data, config: Any) -> Unchanged | None:
    from slimkit.evaluate import count_params
    from slimkit.export import report_of
    from slimkit.factorization import FactorizationWarning, factorize

    model = data.build()
    x = data.inputs()
    params, macs, before = count_params(model), _macs(model, data), logits(model, x)
    out, warned = _warned(FactorizationWarning, lambda: factorize(model, config, data.train))
    report = report_of(out, "factorize")
    if not report["layers"]:
        assert len(warned) == 1 and report["met"] is False and logits(out, x).equal(before)
        reasons = sorted({s["reason"].split(":")[0].split(" (")[0] for s in report["skipped"]})
        return Unchanged("; ".join(reasons) or "no eligible layer")
    assert count_params(out) < params and _macs(out, data) < macs
    assert logits(out, x).shape == before.shape
    return None


def svd(data: Data) -> Unchanged | None:
    from slimkit.factorization import SVD

    return _factorize(data, SVD(target_params=0.6))


def tucker(data: Data) -> Unchanged | None:
    from slimkit.factorization import Tucker

    return _factorize(data, Tucker(target_macs=0.5))


def cp(data: Data) -> Unchanged | None:
    from slimkit.factorization import CP

    return _factorize(data, CP(target_macs=0.5, iterations=3))


# ------------------------------------------------------------------------------ sharing, transforms
def sharing(data: Data) -> None:
    from slimkit.sharing import ShareConfig, share, shared_layers

    out = share(data.build(), ShareConfig(bits=3))
    keys = shared_layers(out)
    assert keys
    for key in keys:
        module, _, tensor = key.rpartition(".")
        assert len(torch.unique(getattr(out.get_submodule(module), tensor))) <= 8, key
    assert logits(out, data.inputs()).isfinite().all()


def fuse(data: Data) -> None:
    from slimkit.export import report_of
    from slimkit.transform import fuse as fuse_norms

    model = data.build()
    for m in model.modules():  # statistics as after training, so folding them really matters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    x = data.inputs()
    out = fuse_norms(copy.deepcopy(model))
    assert len(report_of(out, "fuse")["fused"]) == norms
    assert not any(isinstance(m, nn.BatchNorm2d) for m in out.modules())
    torch.testing.assert_close(logits(out, x), logits(model, x), atol=1e-5, rtol=1e-4)


def lighten(data: Data) -> Unchanged | None:
    from slimkit.export import report_of
    from slimkit.transform import CompressionWarning, LightenConfig
    from slimkit.transform import lighten as lighten_convs

    model = data.build()
    before = logits(model, data.inputs())
    macs = _macs(model, data)
    out, warned = _warned(CompressionWarning, lambda: lighten_convs(model, LightenConfig(calibration_batches=1),
                                                                    data.train))
    report = report_of(out, "lighten")
    if not report["converted"]:
        assert len(warned) == 1 and "the model is unchanged" in warned[0]
        assert logits(out, data.inputs()).equal(before)
        return Unchanged("no plain 3x3 conv to convert")
    assert _macs(out, data) < macs
    return None


# ------------------------------------------------------------------------------ distillation
def _distill(data: Data, losses: list[dict] | None) -> dict:
    from slimkit.distillation import DistillConfig, distill
    from slimkit.export import report_of
    from slimkit.train import TrainConfig

    teacher, student = data.build(seed=0).requires_grad_(False), data.build(seed=1)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    config = DistillConfig(train=TrainConfig(epochs=1, progress=False), **({"losses": losses} if losses else {}))
    distill(student, config, data.train, teacher=teacher)
    assert any(not torch.equal(before[k], v) for k, v in student.state_dict().items())
    return report_of(student, "distill")["history"][0]


def kd(data: Data) -> None:
    history = _distill(data, None)
    assert history["train_loss"] > 0


def feature_loss(data: Data) -> None:
    layer = FEATURE_LAYER[data.name]
    history = _distill(data, [{"name": "kd", "weight": 0.5}, {"name": "ce", "weight": 0.5},
                              {"name": "fitnet", "weight": 1.0, "student": layer, "teacher": layer}])
    assert history["train_fitnet"] > 0


# ------------------------------------------------------------------------------ I/O, evaluation, recipes
def compare(data: Data) -> None:
    from slimkit.evaluate import CompareConfig
    from slimkit.evaluate import compare as compare_models
    from slimkit.pruning import UnstructuredPruning, prune

    model = data.build()
    other = prune(copy.deepcopy(model), UnstructuredPruning(amount=0.5))
    result = compare_models(model, other, data.test, CompareConfig(batch_sizes=(1,), warmup=0, repeats=1, topk=(1,)))
    assert result.ratios["nonzero_params_ratio"] > 1.2, result.ratios  # half of every Conv2d/Linear is zero
    assert set(result.quality) == {"original", "compressed"}, result.quality
    robust = result.robustness["compressed"]
    tokens = zoo.ZOO[data.name][1] == "tokens"
    assert ("skipped" in robust) if tokens else ("noise_0.1" in robust and "shift_2" in robust), robust
    assert result.agreement["num_samples"] == len(data.splits.test)


def onnx(data: Data) -> None:
    from slimkit.export import check_parity, export_onnx, load_onnx

    model = data.build()
    path = export_onnx(model, data.root / f"{data.name}.onnx", data.inputs())
    artifact = load_onnx(path)
    report = check_parity(model, artifact, data.test)
    assert report.passed and report.samples == len(data.splits.test)


def recipe(data: Data) -> None:
    from slimkit.imports import Trust
    from slimkit.recipe import Recipe, run_recipe

    spec = {"name": f"matrix-{data.name}",
            "data": {"name": "synthetic", "batch_size": 16,
                     "options": {"num_classes": 3, "shape": [1, 8, 8], "size": 48, "test_size": 16}},
            "model": {"factory": "zoo:build", "knobs": {"name": data.name, **KNOBS}},
            "evaluation": {"batch_sizes": [1], "repeats": 1, "warmup": 0, "final_repeats": 1},
            "stages": [{"type": "prune", "structured": {"target_macs": 0.5}}]}
    out = data.root / f"recipe-{data.name}"
    result = run_recipe(Recipe.from_dict(spec), out, progress=False, report=False, trust=Trust({"zoo:build"}))
    final = json.loads((out / "final.json").read_text())
    assert result.final is not None and final
    assert final["ratios"]["macs_ratio"] >= 1.8, final["ratios"]


#: technique (column) -> cell
CELLS: dict[str, Callable[[Data], Any]] = {
    "structured pruning": structured, "unstructured pruning": unstructured,
    "static int8": static_int8, "dynamic int8": dynamic_int8, "QAT": qat,
    "SVD": svd, "Tucker": tucker, "CP": cp, "sharing": sharing, "fuse": fuse, "lighten": lighten,
    "KD": kd, "feature loss": feature_loss, "compare": compare, "ONNX + parity": onnx, "recipe": recipe,
}
#: The matrix's columns, in order: the cells, and save/load (one fresh process for every model).
SAVE_LOAD = "save/load"
COLUMNS = [*list(CELLS)[:13], SAVE_LOAD, *list(CELLS)[13:]]


# ------------------------------------------------------------------------------ save/load, fresh process
def reload_in_fresh_process(cases: dict[str, tuple[nn.Module, Any]], root: Path) -> dict[str, bool]:
    """Save each ``zoo name -> (model, inputs)`` under ``root``, reload all in one fresh process
    (from the saved files, into a differently seeded model) and say which gave identical logits."""
    from slimkit.export import save_model

    for name, (model, x) in cases.items():
        folder = save_model(model, root / name)
        torch.save({"inputs": x, "logits": logits(model, x)}, folder / "case.pt")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, __file__, str(root), *cases], capture_output=True, text=True, timeout=120,
                          env=env, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _reload_all(root: Path, names: list[str]) -> dict[str, bool]:
    torch.set_num_threads(1)
    from slimkit.export import load_model

    same = {}
    for name in names:
        torch.manual_seed(1)
        model = load_model(root / name, model=zoo.build(name, **KNOBS))  # other initial weights: the file must win
        case = torch.load(root / name / "case.pt", weights_only=True)
        same[name] = torch.equal(logits(model, case["inputs"]), case["logits"])
    return same


if __name__ == "__main__":
    print(json.dumps(_reload_all(Path(sys.argv[1]), sys.argv[2:])))
