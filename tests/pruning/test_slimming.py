import pytest
import torch

from slimkit.errors import ConfigError
from slimkit.models import build_model
from slimkit.pruning import BNSparsity, StructuredPruning, prune
from slimkit.train import TrainConfig, Trainer


def test_penalty_adds_sign_of_gamma_to_the_gradient():
    model = build_model("cnn", channels=[4], hidden=0, input_size=8)
    bn = model.features[0].bn
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, -2.0, 0.5, 0.0]))
    bn.weight.grad = torch.zeros(4)
    callback = BNSparsity(0.1)
    callback.attach(model)
    callback.apply()
    assert bn.weight.grad.tolist() == pytest.approx([0.1, -0.1, 0.1, 0.0])


def test_sparsity_training_shrinks_bn_scales(tiny_loader):
    def train(strength):
        torch.manual_seed(0)
        model = build_model("cnn", channels=[8, 8], hidden=8, input_size=8)
        callbacks = [BNSparsity(strength)] if strength else []
        config = TrainConfig(epochs=3, optimizer="sgd", lr=0.1, weight_decay=0.0, progress=False)
        Trainer(model, config, callbacks=callbacks).fit(tiny_loader)
        return model, sum(float(m.bn.weight.detach().abs().sum()) for m in model.features)

    (_, plain), (slim, sparse) = train(0.0), train(1.0)
    assert sparse < 0.5 * plain
    prune(slim, StructuredPruning(criterion="bn_scale", ratio=0.5, allocation="global"))
    assert slim.slimkit_history[-1]["channels"]


def test_a_model_without_batchnorm_is_refused():
    callback = BNSparsity(1e-4)
    with pytest.raises(ConfigError, match="no BatchNorm scale in MLP"):
        callback.attach(build_model("mlp", input_size=8))
    with pytest.raises(ConfigError, match="strength must be >= 0"):
        BNSparsity(-1.0)
