"""Quantization-aware training: fake-quant trains in the Trainer, then converts to int8."""

import pytest
import torch
from torch.utils.data import DataLoader, Subset

from slimkit.errors import ConfigError
from slimkit.export import OrtModule, report_of
from slimkit.models import build_model
from slimkit.quantization import QAT, convert_qat, prepare_qat, quantize, train_qat
from slimkit.train import TrainConfig, Trainer


def test_fake_quant_model_trains_and_converts(loaders, test_batch):
    model = build_model("cnn", channels=[4, 8], hidden=16, input_size=8, num_classes=3)
    Trainer(model, TrainConfig(epochs=1, lr=1e-3, progress=False)).fit(loaders.train)
    model.eval()
    config = QAT(weight_bits=4, lr=3e-3, backend="x86", compile=False)
    x = next(iter(loaders.train))[0]
    prepared = prepare_qat(model, config, x)
    fake_quants = [m for m in prepared.modules() if type(m).__name__ == "FakeQuantize"]
    assert len(fake_quants) >= 8  # weights and activations of 4 layers
    result = Trainer(prepared, TrainConfig(epochs=3, lr=3e-3, progress=False, weight_decay=0.0)).fit(loaders.train)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0]
    prepared.eval()
    with torch.no_grad():
        simulated = prepared(test_batch)
    converted = convert_qat(prepared, model, config, [x])
    with torch.no_grad():
        deployed = converted(test_batch)
    # the converted graph computes what training simulated (convert_qat's last observation moves the
    # activation ranges by 1% of a batch's, hence not bit-exact)
    assert float((simulated.argmax(1) == deployed.argmax(1)).float().mean()) > 0.95
    assert (simulated - deployed).abs().max() < 0.05 * simulated.abs().max()
    weights = [getattr(converted, n.args[0].target) for n in converted.graph.nodes
               if "dequantize_per_channel" in str(n.target)]
    assert weights and all(-7 <= int(w.min()) and int(w.max()) <= 7 for w in weights)  # W4 grid


def test_quantize_with_qat_distills_and_deploys_to_onnxruntime(trained_cnn, loaders, test_batch):
    few = DataLoader(Subset(loaders.splits.train, range(64)), batch_size=32, shuffle=True)
    q = quantize(trained_cnn, QAT(epochs=1, lr=1e-4), few)
    assert isinstance(q, OrtModule) and report_of(q, "quantize")["kind"] == "qat"
    assert report_of(q, "quantize")["parity"]["passed"]
    with torch.no_grad():
        assert float((q(test_batch).argmax(1) == trained_cnn(test_batch).argmax(1)).float().mean()) > 0.9


def test_qat_refuses_histogram_observers(trained_cnn, loaders):
    with pytest.raises(ConfigError, match="histogram"):
        quantize(trained_cnn, QAT(observer="entropy"), loaders.train)


def test_train_qat_without_distillation_uses_the_trainer(trained_cnn, loaders):
    config = QAT(distill=False, backend="x86", compile=False, epochs=1)
    prepared = prepare_qat(trained_cnn, config, next(iter(loaders.train))[0])
    before = {k: v.clone() for k, v in prepared.state_dict().items() if v.is_floating_point()}
    train_qat(prepared, trained_cnn, loaders.train, config)
    after = prepared.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
