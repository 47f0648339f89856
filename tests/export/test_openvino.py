"""OpenVINO as a runtime and a deployable IR: parity with the model, named inputs and outputs,
saving and reloading, and NNCF int8."""

import copy
import pickle

import pytest
import torch
import zoo

from slimkit.export import FP32, check_parity, load_artifact, save_model
from slimkit.export.openvino import OpenVINOModule, export_openvino, load_openvino, nncf_int8, to_openvino
from slimkit.export.serialize import load_model
from slimkit.models import build_model
from slimkit.quantization.runtime import INT8_VS_FLOAT

pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return build_model("cnn", channels=[8, 16], hidden=32, input_size=8, num_classes=3).eval()


def test_ir_export_reloads_with_parity_at_any_batch(cnn, tmp_path):
    x = torch.randn(8, 1, 8, 8)
    path = export_openvino(cnn, tmp_path / "model.xml", x[:2])
    assert path.suffix == ".xml" and path.with_suffix(".bin").stat().st_size > 4 * 1000  # fp32 weights, not fp16
    for module in (load_openvino(path), load_artifact(path)):
        assert check_parity(cnn, module, x, tolerance=FP32).passed
        assert module(x[:1]).shape == (1, 3)  # each shape compiles once
    with pytest.raises(Exception, match="no OpenVINO IR"):
        load_openvino(tmp_path / "missing.xml")


def test_named_inputs_and_dict_outputs_survive_state_dict_and_pickle():
    model = zoo.build("dict_io", input_size=8, num_classes=3).eval()
    inputs = {"image": torch.randn(4, 1, 8, 8), "scale": torch.rand(4) + 0.5}
    module = to_openvino(model, inputs)
    assert module.input_names == ["image", "scale"] and not module.is_ir
    out = module(**inputs)
    assert set(out) == {"logits", "features"} and check_parity(model, module, inputs, tolerance=FP32).passed
    for clone in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
        assert torch.allclose(clone(**inputs)["logits"], out["logits"])
    state = module.state_dict()
    empty = OpenVINOModule(sizes=(state["ov_model"].numel(), state["ov_weights"].numel()))
    empty.load_state_dict(state)
    assert torch.allclose(empty(inputs)["logits"], out["logits"])


def test_a_saved_openvino_model_reloads(cnn, tmp_path):
    x = torch.randn(4, 1, 8, 8)
    module = to_openvino(cnn, x)
    module.slimkit_spec = cnn.slimkit_spec
    module.slimkit_history = [{"kind": "openvino", "bytes": module.ov_model.numel(), "weights": 0}]
    reloaded = load_model(save_model(module, tmp_path / "saved"))
    assert isinstance(reloaded, OpenVINOModule) and torch.allclose(reloaded(x), module(x))


def test_nncf_int8_is_an_ir_close_to_the_float_model(cnn):
    torch.manual_seed(1)
    batches = [torch.randn(16, 1, 8, 8) for _ in range(2)]
    q = nncf_int8(cnn, batches)
    assert q.is_ir and q.ov_weights.numel() < 0.5 * sum(p.numel() * 4 for p in cnn.parameters())  # int8 weights
    assert check_parity(cnn, q, batches, tolerance=INT8_VS_FLOAT).passed
