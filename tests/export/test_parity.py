"""Parity checks fail loudly; artifact latency is measured the foundation's way."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from slimkit.export import (
    FP32,
    INT8,
    ExportError,
    ParityError,
    Tolerance,
    artifact_latency,
    check_parity,
    export_onnx,
    export_program,
    load_artifact,
)


class Shifted(nn.Module):
    def __init__(self, base: nn.Module, shift: float) -> None:
        super().__init__()
        self.base, self.shift = base, shift

    def forward(self, x):
        return self.base(x) + self.shift


@pytest.fixture
def linear():
    torch.manual_seed(0)
    return nn.Linear(6, 4).eval()


def test_identical_models_pass_with_all_fields(linear):
    loader = DataLoader(TensorDataset(torch.randn(20, 6), torch.zeros(20)), batch_size=8)
    report = check_parity(linear, linear, loader, name="same")
    assert report.passed and report.samples == 20 and report.max_abs_diff == 0.0 and report.agreement == 1.0
    assert report.to_dict()["name"] == "same" and "ok on 20 samples" in str(report)


def test_out_of_tolerance_raises_with_the_numbers(linear):
    x = torch.randn(32, 6)
    with torch.no_grad():
        ref_max = float(linear(x).abs().max())
    with pytest.raises(ParityError, match=r"drifted: FAILED on 32 samples, max \|logit diff\| 0\.5"):
        check_parity(linear, Shifted(linear, 0.5), x, name="drifted")
    report = check_parity(linear, Shifted(linear, 0.5), x, raise_on_failure=False)
    assert not report.passed and report.allowed_diff == pytest.approx(FP32.atol + FP32.rtol * ref_max)
    # a constant shift keeps every prediction, so agreement alone would pass
    assert report.agreement == 1.0
    assert check_parity(linear, Shifted(linear, 0.5), x, tolerance=Tolerance(1.0, 0.0, 1.0)).passed


def test_disagreeing_predictions_fail_even_within_the_logit_tolerance(linear):
    x = torch.randn(64, 6)
    flipped = Shifted(linear, 0.0)
    flipped.forward = lambda inp: -linear(inp)  # same magnitudes, opposite predictions
    loose = Tolerance(atol=100.0, rtol=0.0, min_agreement=INT8.min_agreement)
    with pytest.raises(ParityError, match="agreement"):
        check_parity(linear, flipped, x, tolerance=loose)


def test_shape_mismatch_and_empty_data(linear):
    with pytest.raises(ParityError, match="output shape"):
        check_parity(linear, nn.Linear(6, 3), torch.randn(4, 6))
    with pytest.raises(ExportError, match="no data"):
        check_parity(linear, linear, [])


def test_artifact_latency_alternates_files_and_modules(linear, tmp_path):
    x = torch.randn(2, 6)
    onnx_path = export_onnx(linear, tmp_path / "m.onnx", x)
    pt2_path = export_program(linear, tmp_path / "m.pt2", x)
    stats = artifact_latency({"pytorch": linear, "onnx": onnx_path, "program": pt2_path}, x,
                             batch_sizes=(1, 8), warmup=1, repeats=3, threads=1)
    assert set(stats) == {"pytorch", "onnx", "program"}
    for per_batch in stats.values():
        assert set(per_batch) == {1, 8} and all(s["median_ms"] > 0 and s["threads"] == 1 for s in per_batch.values())


def test_load_artifact_rejects_unknown_files(tmp_path):
    with pytest.raises(ExportError, match="unknown artifact type '.bin'"):
        load_artifact(tmp_path / "model.bin")
