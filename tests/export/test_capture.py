"""Exports keep the model's inputs: names, dtypes (int64 token IDs), several named or positional
inputs, dynamic batch and marked axes; OrtModule feeds them by name and returns the model's
output structure; parity checks take any inputs."""

import pytest
import torch
import zoo
from torch import nn

from slimkit.errors import ConfigError, ModelError
from slimkit.export import (
    FP32,
    ExportError,
    OrtModule,
    check_parity,
    export_onnx,
    export_program,
    export_torchscript,
    load_artifact,
    onnx_bytes,
)
from slimkit.modelio import input_spec


class TokenBag(nn.Module):
    """Token IDs and a float mask in, a dict with logits out; any sequence length."""

    def __init__(self, vocab: int = 20, dim: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.embed, self.head = nn.Embedding(vocab, dim), nn.Linear(dim, classes)

    def forward(self, input_ids, attention_mask):
        x = self.embed(input_ids) * attention_mask.unsqueeze(-1)
        return {"logits": self.head(x.sum(1) / attention_mask.sum(1, keepdim=True).clamp(min=1))}


class FixedLength(nn.Module):
    """Flattens the tokens into a Linear: the sequence length is part of the weights."""

    def __init__(self, length: int = 5) -> None:
        super().__init__()
        self.embed, self.head = nn.Embedding(10, 4), nn.Linear(4 * length, 2)

    def forward(self, tokens):
        return self.head(self.embed(tokens).flatten(1))


def _tokens(n, length, vocab=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (n, length), generator=g)
    return {"input_ids": ids, "attention_mask": (torch.rand(n, length, generator=g) > 0.2).float()}


def test_token_ids_stay_int64_and_a_marked_axis_is_dynamic():
    model = TokenBag().eval()
    axes = {"input_ids": {1: "sequence"}, "attention_mask": {1: "sequence"}}
    ort = OrtModule(onnx_bytes(model, _tokens(2, 5), dynamic_axes=axes))
    inputs = {i.name: (i.type, i.shape) for i in ort.session().get_inputs()}
    assert inputs == {"input_ids": ("tensor(int64)", ["batch", "sequence"]),
                      "attention_mask": ("tensor(float)", ["batch", "sequence"])}
    longer = _tokens(3, 11, seed=1)  # exported at length 5, run at 11 and batch 3
    out = ort(**longer)
    assert set(out) == {"logits"} and out["logits"].shape == (3, 3)
    assert torch.allclose(out["logits"], model(**longer)["logits"], atol=1e-5)
    assert check_parity(model, ort, longer, tolerance=FP32).passed
    assert torch.equal(ort(longer)["logits"], out["logits"])  # one mapping of named inputs works too


def test_dict_inputs_become_named_inputs_and_dict_outputs_come_back(tmp_path):
    model = zoo.build("dict_io", input_size=8, num_classes=3).eval()
    inputs = {"image": torch.randn(4, 1, 8, 8), "scale": torch.rand(4) + 0.5}
    ort = load_artifact(export_onnx(model, tmp_path / "m.onnx", inputs))
    assert ort.input_names == ["image", "scale"]
    out = ort(**inputs)
    assert set(out) == {"logits", "features"} and out["features"].shape == (4, 32)
    report = check_parity(model, ort, [(inputs, torch.zeros(4))], tolerance=FP32)  # a loader of (dict, y)
    assert report.passed and report.samples == 4


def test_tuple_inputs_are_positional_and_tuple_outputs_stay_tuples():
    model = zoo.build("two_inputs", input_size=8, num_classes=3).eval()
    inputs = (torch.randn(3, 1, 8, 8), torch.randn(3, 8))
    ort = OrtModule(onnx_bytes(model, inputs))
    assert ort.input_names == ["input_0", "input_1"]
    logits, features = ort(*inputs)
    assert logits.shape == (3, 3) and features.shape == (3, 48)
    assert check_parity(model, ort, inputs, tolerance=FP32).passed
    assert torch.allclose(ort(input_1=inputs[1], input_0=inputs[0])[0], logits)


def test_export_without_example_uses_the_recorded_input_spec():
    model = TokenBag().eval()
    model.slimkit_inputs = input_spec(_tokens(1, 6))
    ort = OrtModule(onnx_bytes(model))  # no example given: zeros from the spec, batch dynamic
    assert ort(**_tokens(7, 6))["logits"].shape == (7, 3)
    with pytest.raises(ExportError, match="no example inputs for Linear"):
        onnx_bytes(nn.Linear(2, 2))


def test_ort_module_refuses_wrong_dtypes_and_names():
    model = TokenBag().eval()
    ort = OrtModule(onnx_bytes(model, _tokens(2, 4)))
    bad = _tokens(2, 4)
    with pytest.raises(ModelError, match="input 'input_ids' is float32 but the exported model takes int64"):
        ort(input_ids=bad["input_ids"].float(), attention_mask=bad["attention_mask"])
    with pytest.raises(ModelError, match="no input 'ids'"):
        ort(ids=bad["input_ids"], attention_mask=bad["attention_mask"])
    with pytest.raises(ModelError, match=r"input\(s\) \['attention_mask'\] were not given"):
        ort(bad["input_ids"])
    # int32 IDs and float64 masks are cast within their kind, never across
    out = ort(input_ids=bad["input_ids"].int(), attention_mask=bad["attention_mask"].double())
    assert torch.allclose(out["logits"], model(**bad)["logits"], atol=1e-5)


def test_dynamic_axes_are_checked():
    model = FixedLength().eval()
    tokens = torch.randint(0, 10, (2, 5))
    with pytest.raises(ConfigError, match=r"dynamic_axes names input 'tokens', but the model's inputs are \['input'\]"):
        onnx_bytes(model, tokens, dynamic_axes={"tokens": {1: "sequence"}})
    with pytest.raises(ConfigError, match="has axis 2"):
        onnx_bytes(model, tokens, dynamic_axes={"input": {2: "sequence"}})
    with pytest.raises(ExportError, match="fixes the size of the dynamic axis sequence") as caught:
        onnx_bytes(model, tokens, dynamic_axes={"input": {1: "sequence"}})
    assert "position table" in caught.value.hint
    assert OrtModule(onnx_bytes(model, tokens))(tokens[:1]).shape == (1, 2)  # batch alone is fine


def test_program_and_torchscript_take_named_inputs(tmp_path):
    model = TokenBag().eval()
    inputs = _tokens(2, 5)
    program = load_artifact(export_program(model, tmp_path / "m.pt2", inputs,
                                           dynamic_axes={"input_ids": {1: "seq"}, "attention_mask": {1: "seq"}}))
    longer = _tokens(4, 9, seed=2)
    assert torch.allclose(program(**longer)["logits"], model(**longer)["logits"], atol=1e-5)
    traced = load_artifact(export_torchscript(model, tmp_path / "m.pt", inputs))
    assert torch.allclose(traced(**inputs)["logits"], model(**inputs)["logits"], atol=1e-6)
