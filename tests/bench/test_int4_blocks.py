"""bench/int4_blocks.py builds valid ONNX Runtime models: every int4 variant computes the same
product shape as the int8 reference, so the timings compare like with like."""

import importlib.util

import numpy as np
import onnxruntime as ort
import pytest

from .conftest import ROOT


@pytest.fixture(scope="module")
def blocks():
    spec = importlib.util.spec_from_file_location("int4_blocks", ROOT / "bench" / "int4_blocks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("block,zero_points,level", [(32, False, 0), (64, True, 4), (128, False, 4)])
def test_every_int4_variant_runs_and_matches_the_int8_shape(blocks, block, zero_points, level):
    a = np.random.default_rng(0).standard_normal((2, blocks.K)).astype(np.float32)
    run = {name: ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"A": a})[0]
           for name, model in (("int8", blocks.int8()), ("int4", blocks.int4(block, zero_points, level)))}
    assert run["int4"].shape == run["int8"].shape == (2, blocks.N)
    assert np.isfinite(run["int4"]).all()
