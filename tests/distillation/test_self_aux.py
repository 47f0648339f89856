import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from slimkit.distillation.hooks import FeatureCapture
from slimkit.distillation.losses.logit import soft_kl
from slimkit.distillation.self_aux import (
    AuxHead,
    SelfDistillLoss,
    default_layers,
    self_distill,
)
from slimkit.errors import ConfigError, DataError, ModelError
from slimkit.models import build_model
from slimkit.train import TrainConfig


def cnn() -> nn.Module:
    torch.manual_seed(0)
    return build_model("cnn", channels=[4, 8], hidden=8, input_size=8, num_classes=3)


def no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_hooks_with_kwargs for m in model.modules())


def test_loss_matches_formula_for_one_head():
    net = cnn()
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    loss = SelfDistillLoss(net, ["features.0"], x, temperature=2.0, alpha=0.3)
    final = net(x)
    total, logs = loss(final, (x, y))
    with FeatureCapture(net, ["features.0"]) as capture:
        net(x)
        aux = loss.heads[0](capture["features.0"])
    expected = F.cross_entropy(final, y) + 0.7 * F.cross_entropy(aux, y) + 0.3 * soft_kl(aux, final, 2.0)
    torch.testing.assert_close(total, expected)
    assert sorted(logs) == ["aux0.ce", "aux0.kd", "ce"]
    loss.close()
    assert no_hooks(net)


def test_kd_term_does_not_pull_the_final_head():
    net = cnn()
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    loss = SelfDistillLoss(net, ["features.0"], x, alpha=1.0)  # KD only on the aux head
    total, _ = loss(net(x), (x, y))
    (total - F.cross_entropy(net(x), y)).backward()
    assert net.classifier.out.weight.grad.abs().sum() == 0  # the deep head is the teacher
    assert net.features[0].conv.weight.grad.abs().sum() > 0  # shallow layers do learn
    loss.close()


def test_heads_from_feature_shapes_and_feature_term():
    net = cnn()
    x = torch.randn(2, 1, 8, 8)
    loss = SelfDistillLoss(net, ["features.0"], x, head="conv", feature_weight=0.5, feature_layer="features.1")
    head = loss.heads[0]
    assert isinstance(head.body[0], nn.Conv2d) and head.body[0].in_channels == 4
    assert loss.adapters[0].out_features == 8  # pooled features.1 has 8 channels
    _, logs = loss(net(x), (x, torch.tensor([0, 1])))
    assert logs["aux0.feat"] > 0
    loss.close()
    flat = AuxHead(torch.zeros(2, 5), 3)
    assert len(flat.body) == 0 and flat.fc.in_features == 5


def test_self_distill_trains_heads_without_editing_model(tiny_splits):
    net = cnn()
    keys = list(net.state_dict())
    before = net.features[0].conv.weight.detach().clone()
    train = DataLoader(tiny_splits.train, batch_size=16, shuffle=True)
    config = TrainConfig(epochs=3, lr=1e-2, progress=False, threads=1)
    model, heads = self_distill(net, train, config=config, head="conv", return_heads=True)
    assert model is net and list(model.state_dict()) == keys
    assert no_hooks(model)
    assert not torch.equal(model.features[0].conv.weight, before)
    assert list(heads) == ["features.0"]
    # The aux head learned too: it classifies the training data well above chance (1/3).
    x, y = next(iter(DataLoader(tiny_splits.train, batch_size=200)))
    model.eval()
    with FeatureCapture(model, ["features.0"]) as capture:
        model(x)
        acc = (heads["features.0"].eval()(capture["features.0"]).argmax(1) == y).float().mean()
    assert acc > 0.6


def test_hooks_removed_even_when_training_fails(tiny_splits):
    net = cnn()
    unlabeled = DataLoader([(x,) for x, _ in tiny_splits.train], batch_size=16)
    with pytest.raises(DataError, match="hard labels"):
        self_distill(net, unlabeled, config=TrainConfig(epochs=1, progress=False, threads=1))
    assert no_hooks(net)


def test_default_layers_and_bad_input():
    assert default_layers(build_model("cnn", input_size=8, num_classes=3)) == ["features.0", "features.1"]
    with pytest.raises(ConfigError, match="cannot guess aux layers"):
        default_layers(nn.Linear(2, 2))
    net, x = cnn(), torch.zeros(2, 1, 8, 8)
    with pytest.raises(ConfigError, match="no module 'features.O' to capture. Did you mean"):
        SelfDistillLoss(net, ["features.O"], x)
    with pytest.raises(ConfigError, match="feature_layer"):
        SelfDistillLoss(net, ["features.0"], x, feature_weight=1.0)
    with pytest.raises(ConfigError, match="alpha"):
        SelfDistillLoss(net, ["features.0"], x, alpha=1.5)
    with pytest.raises(ModelError, match=r"\(N, C, H, W\) or \(N, F\)"):
        AuxHead(torch.zeros(2, 3, 4), 3)
    assert no_hooks(net)
