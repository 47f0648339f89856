"""A custom model (a factory in the user's own package) through the CLI end to end, by folder:
``train --model pkg.mod:factory`` -> ``prune`` -> ``quantize`` -> ``export`` -> ``compare``, on
digits and on an image folder written on the fly. Each later command reloads the custom model
from the folder the step before wrote, importing the factory that folder records (``--trust-code``)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from clitools import QUICK, final, stage
from PIL import Image

from slimkit.cli import main
from slimkit.evaluate import count_macs
from slimkit.export import OrtModule, load_onnx, onnx_ops
from slimkit.imports import Trust
from slimkit.recipe.runfolder import load_run_model, recorded_factory

PACKAGE = "slimkit_matrix_nets"
FACTORY = f"{PACKAGE}.nets:make"
X = torch.randn(4, 1, 8, 8)


@pytest.fixture(scope="module")
def user_code(tmp_path_factory):
    """A package of the user's, importable like any installed one (on sys.path)."""
    root = tmp_path_factory.mktemp("code")
    (root / PACKAGE).mkdir()
    (root / PACKAGE / "__init__.py").write_text("")
    (root / PACKAGE / "nets.py").write_text(textwrap.dedent("""
        from torch import nn

        def make(width=8, classes=10):
            return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                                 nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, classes))
    """))
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(root))
        yield root


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """3 classes x 12 grayscale 8x8 PNGs: a bright band per class (rows 0-2, 3-5, 6-7) plus noise."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for label, rows in enumerate((slice(0, 3), slice(3, 6), slice(6, 8))):
        (root / f"class{label}").mkdir()
        for i in range(12):
            pixels = rng.integers(0, 60, size=(8, 8)).astype(np.uint8)
            pixels[rows] = 220
            Image.fromarray(pixels, mode="L").save(root / f"class{label}" / f"{i}.png")
    return root


def cli(*args: str) -> None:
    assert main([*args, "--threads", "1", *QUICK]) == 0, args


def _chain(root: Path, data: list[str], knobs: str) -> dict[str, Path]:
    """train -> prune -> quantize -> export -> compare, each on the folder the step before wrote."""
    runs = {step: root / step for step in ("train", "prune", "quantize", "export")}
    cli("train", "--model", f"{FACTORY}:{knobs}", *data, "--epochs", "1", "--out", str(runs["train"]))
    cli("prune", str(runs["train"]), "--trust-code", "--target-macs", "0.5", "--finetune-epochs", "0",
        "--out", str(runs["prune"]))
    cli("quantize", str(runs["prune"]), "--trust-code", "--calib", "32",
        "--set", "quantize.static_int8.backend=onnxruntime", "--out", str(runs["quantize"]))
    cli("export", str(runs["prune"]), "--trust-code", "--format", "onnx", "--no-latency", "--out", str(runs["export"]))
    runs["compare"] = root / "compare.json"
    assert main(["compare", str(runs["train"]), str(runs["prune"]), "--trust-code", "--threads", "1",
                 "--repeats", "1", "--json", str(runs["compare"])]) == 0
    return runs


def _check(runs: dict[str, Path], classes: int) -> None:
    # train: the folder records the factory, and the model reloads from it (only when trusted)
    assert recorded_factory(runs["train"] / "01-train" / "model") == FACTORY
    trained = load_run_model(runs["train"], trust=Trust({FACTORY}))
    assert trained(X).shape == (4, classes)
    # prune: the custom model reloaded by folder, half the MACs, and the folder reloads in turn
    pruned = load_run_model(runs["prune"], trust=Trust({FACTORY}))
    assert count_macs(pruned, X[:1]) <= 0.55 * count_macs(trained, X[:1])
    assert stage(runs["prune"])["vs_original"]["macs_ratio"] >= 1.8
    assert recorded_factory(runs["prune"] / "01-prune" / "model") == FACTORY
    # quantize: an int8 ONNX artifact that passed its parity check and matches the run's model
    quantized = stage(runs["quantize"], 0)
    assert quantized["config"]["static_int8"]["backend"] == "onnxruntime" and quantized["info"]["parity"]["passed"]
    artifact = runs["quantize"] / "02-export" / "model.onnx"
    assert onnx_ops(artifact)["QuantizeLinear"] >= 2
    int8 = load_run_model(runs["quantize"], trust=Trust({FACTORY}))
    assert isinstance(int8, OrtModule) and torch.equal(int8(X), load_onnx(artifact)(X))
    # export: an fp32 ONNX file equal to the pruned model
    exported = stage(runs["export"])
    assert exported["info"]["parity"]["passed"] and exported["info"]["file"] == "model.onnx"
    torch.testing.assert_close(load_onnx(runs["export"] / "01-onnx" / "model.onnx")(X), pruned(X), atol=1e-4, rtol=1e-4)
    # compare: both folders measured on the same data
    comparison = json.loads(runs["compare"].read_text())
    assert comparison["ratios"]["macs_ratio"] >= 1.8 and comparison["agreement"]["num_samples"] > 0
    assert final(runs["prune"])["original"]["folder"] == "00-source"


def test_custom_model_through_the_cli_by_folder(user_code, tmp_path):
    runs = _chain(tmp_path, ["--dataset", "digits", "--limit", "160", "--batch-size", "32"], "width=8")
    _check(runs, classes=10)


def test_custom_model_on_an_image_folder(user_code, image_folder, tmp_path):
    runs = _chain(tmp_path, ["--dataset", str(image_folder), "--batch-size", "8"], "width=8,classes=3")
    assert stage(runs["train"])["data"]["config"]["path"] == str(image_folder)
    assert stage(runs["prune"])["data"]["config"]["path"] == str(image_folder)  # later steps reuse the run's data
    _check(runs, classes=3)  # the factory's knobs (classes=3) are recorded and replayed with it
