"""bench/int4_runtimes.py builds OpenVINO and torchao int4 models that compute what the float model does, so
its timings compare like with like."""

import importlib.util

import pytest
import torch

from .conftest import ROOT

pytest.importorskip("openvino")
pytest.importorskip("nncf")


@pytest.fixture
def int4_runtimes(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # it imports quantize_int4
    spec = importlib.util.spec_from_file_location("int4_runtimes", ROOT / "bench" / "int4_runtimes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_openvino_int4_variant_stays_close_to_the_float_model(int4_runtimes):
    model = int4_runtimes.mlp(64, 2)
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    variants = int4_runtimes.int4_models(model, x[:1], threads=1)
    assert len(variants) == 4
    with torch.no_grad():
        ref = model(x)
        for name, variant in variants.items():
            out = variant(x)
            assert out.shape == ref.shape, name
            assert float((out - ref).abs().max() / ref.abs().max()) < 0.25, name  # int4 noise, not a wrong graph


def test_torchao_int4_takes_the_layers_its_kernel_fits_and_stays_close(int4_runtimes):
    model = int4_runtimes.mlp(64, 2)  # 784 -> 64 -> 64 -> 10: only 64 -> 64 fits (inputs by 32, outputs by 16)
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    variants, unavailable = int4_runtimes.torchao_models(model)
    assert int4_runtimes.TORCHAO in variants and set(variants) | set(unavailable) == {int4_runtimes.TORCHAO,
                                                                                     int4_runtimes.TORCHAO_DA8W4}
    assert int4_runtimes.int4_layers(model) == "0 of 3"
    with torch.no_grad():
        ref = model(x)
        for name, variant in variants.items():
            assert int4_runtimes.int4_layers(variant) == "1 of 3", name
            assert float((variant(x) - ref).abs().max() / ref.abs().max()) < 0.25, name


def test_quick_run_times_every_int4_runtime_against_int8(quick_bench):
    data, markdown = quick_bench("int4_runtimes")
    assert data["quick"] is True and data["batch_sizes"] == [1, 32]
    rows = data["rows"]
    assert len(rows) + len(data["unavailable"]) == 8 and rows["ORT static int8 (slimkit)"]["vs_int8"] == {"1": 1.0, "32": 1.0}
    assert all(r["median_ms"]["32"] > 0 and 0 <= r["relative_error"] < 0.25 for r in rows.values())
    best = max(r["vs_int8"]["32"] for name, r in rows.items() if "int8 (slimkit)" not in name)
    assert [t["value"] for t in data["targets"]] == [best] and "| ORT int4 MatMulNBits (acc 4) |" in markdown
