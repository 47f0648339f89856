"""TorchScript and torch.export artifacts: round trip with parity, the int8 graph too, clear failures."""

import pytest
import torch
from torch import nn

from slimkit.export import (
    FP32,
    ExportError,
    check_parity,
    export_program,
    export_torchscript,
    load_program,
    load_torchscript,
)
from slimkit.models import build_model
from slimkit.quantization import StaticInt8, quantize


@pytest.mark.parametrize("name", ["cnn", "resnet"])
def test_torchscript_and_program_reproduce_the_model(name, tiny_splits, tmp_path):
    model = build_model(name, input_size=8, num_classes=3).eval()
    x = torch.stack([tiny_splits.train[i][0] for i in range(16)])
    for path, load in ((export_torchscript(model, tmp_path / "m.pt", x[:1]), load_torchscript),
                       (export_program(model, tmp_path / "m.pt2", x[:1]), load_program)):
        artifact = load(path)
        assert check_parity(model, artifact, x, tolerance=FP32).passed
        assert artifact(x[:5]).shape == (5, 3)  # the batch dimension stays dynamic


def test_int8_pt2e_graph_saves_as_a_program(tiny_splits, tmp_path):
    model = build_model("cnn", channels=[4, 8], hidden=16, input_size=8, num_classes=3).eval()
    x = torch.stack([tiny_splits.train[i][0] for i in range(16)])
    q = quantize(model, StaticInt8(calibration_batches=1, backend="x86", compile=False), [x])
    again = load_program(export_program(q, tmp_path / "int8.pt2", x))
    with torch.no_grad():
        assert torch.allclose(again(x), q(x), atol=1e-5)


class Branchy(nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # data-dependent Python control flow: torch.export cannot capture it
            return x * 2
        return x


def test_failures_name_the_model_and_the_cause(tmp_path):
    with pytest.raises(ExportError, match="torch.export failed for Branchy"):
        export_program(Branchy(), tmp_path / "b.pt2", torch.randn(2, 3))
    with pytest.raises(ExportError, match="no TorchScript file"):
        load_torchscript(tmp_path / "missing.pt")
    with pytest.raises(ExportError, match="no torch.export file"):
        load_program(tmp_path / "missing.pt2")
