"""Int8 for models that take integer token IDs, named or several inputs: calibration accepts
their batches, and the ONNX Runtime artifact is called on token IDs and passes its parity check."""

import pytest
import torch
import zoo
from torch import nn
from torch.utils.data import DataLoader

from slimkit import modelio
from slimkit.data import load_dataset
from slimkit.export import OrtModule, onnx_ops, report_of
from slimkit.quantization import DynamicInt8, StaticInt8, quantize


@pytest.fixture(scope="module")
def images():
    return load_dataset("synthetic", num_classes=3, shape=(1, 8, 8), size=64, test_size=16, noise=0.3)


class TokenBag(nn.Module):
    """Token IDs and a mask as named inputs (as Hugging Face models take them), logits out."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.hidden, self.head = nn.Embedding(16, 16), nn.Linear(16, 32), nn.Linear(32, 3)

    def forward(self, input_ids, attention_mask):
        x = (self.embed(input_ids) * attention_mask.unsqueeze(-1)).mean(1)
        return self.head(torch.relu(self.hidden(x)))


def test_dynamic_int8_transformer_runs_on_token_ids(images):
    torch.manual_seed(0)
    model = zoo.build("transformer", input_size=8, num_classes=3, dim=16, depth=1).eval()
    loader = DataLoader(zoo.adapt("transformer", images.train), batch_size=16)
    with pytest.warns(UserWarning, match=r"embed \(Embedding\)"):  # embeddings have no int8 kernel here
        q = quantize(model, DynamicInt8(), loader)
    assert isinstance(q, OrtModule)
    assert [(i.name, i.type) for i in q.session().get_inputs()] == [("input", "tensor(int64)")]
    tokens, _ = next(iter(loader))
    assert tokens.dtype == torch.int64 and q(tokens).shape == (16, 3)
    info = report_of(q, "quantize")
    assert info["parity"]["passed"] and info["export_parity"]["max_abs_diff"] < 1e-4
    assert onnx_ops(q)["MatMulInteger"] >= 3  # attention output, both feed-forward layers, head
    assert modelio.logits_of(q(tokens[:1])).shape == (1, 3)


def test_static_int8_with_named_token_inputs_and_labels_in_the_batch():
    torch.manual_seed(0)
    ids = torch.randint(0, 16, (64, 6))
    batches = [{"input_ids": ids[i:i + 16], "attention_mask": torch.ones(16, 6), "labels": torch.zeros(16)}
               for i in range(0, 64, 16)]
    model = TokenBag().eval()
    with pytest.warns(UserWarning, match=r"embed \(embedding\)"):
        q = quantize(model, StaticInt8(calibration_batches=4), batches)
    assert sorted(q.input_names) == ["attention_mask", "input_ids"]
    info = report_of(q, "quantize")
    assert info["parity"]["passed"] and info["quantized_layers"] == ["hidden", "head"]
    assert info["calibration_samples"] == 64 and onnx_ops(q)["QuantizeLinear"] >= 2
    out = q(input_ids=ids[:5], attention_mask=torch.ones(5, 6))
    ref = model(input_ids=ids[:5], attention_mask=torch.ones(5, 6))
    assert out.shape == (5, 3) and (out.argmax(1) == ref.argmax(1)).float().mean() >= 0.8


def test_two_positional_inputs_calibrate_and_export(images):
    model = zoo.build("two_inputs", input_size=8, num_classes=3).eval()
    loader = DataLoader(zoo.adapt("two_inputs", images.train), batch_size=16)
    q = quantize(model, StaticInt8(calibration_batches=2), loader)
    assert q.input_names == ["input_0", "input_1"] and report_of(q, "quantize")["parity"]["passed"]
    (image, rows), _ = next(iter(loader))
    logits, features = q(image, rows)
    assert logits.shape == (16, 3) and features.shape == (16, 48)
