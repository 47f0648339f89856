"""bench/int4_openvino.py builds OpenVINO int4 models that compute what the float model does, so
its timings compare like with like."""

import importlib.util

import pytest
import torch

from .conftest import ROOT

pytest.importorskip("openvino")
pytest.importorskip("nncf")


@pytest.fixture
def int4_openvino(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # it imports quantize_int4
    spec = importlib.util.spec_from_file_location("int4_openvino", ROOT / "bench" / "int4_openvino.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_openvino_int4_variant_stays_close_to_the_float_model(int4_openvino):
    model = int4_openvino.mlp(64, 2)
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    variants = int4_openvino.int4_models(model, x[:1], threads=1)
    assert len(variants) == 4
    with torch.no_grad():
        ref = model(x)
        for name, variant in variants.items():
            out = variant(x)
            assert out.shape == ref.shape, name
            assert float((out - ref).abs().max() / ref.abs().max()) < 0.25, name  # int4 noise, not a wrong graph
