import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from slimkit.distillation.mutual import MutualLoss, PeerEnsemble, PeerLogits, mutual
from slimkit.errors import ConfigError, DataError, ModelError
from slimkit.models import build_model
from slimkit.train import TrainConfig, evaluate_loss_acc


def peer() -> nn.Module:
    return build_model("mlp", hidden=[16], input_size=8, num_classes=3)


def hand_loss(z: torch.Tensor, y: torch.Tensor, temp: float) -> torch.Tensor:
    """DML by the formula: CE + T^2 KL(mean of the other peers' softmax || own softmax)."""
    total = torch.zeros(())
    for k in range(z.shape[0]):
        others = [F.softmax(z[j] / temp, dim=1) for j in range(z.shape[0]) if j != k]
        target = torch.stack(others).mean(0).detach()
        own = F.softmax(z[k] / temp, dim=1)
        kl = (target * (target.log() - own.log())).sum(1).mean() * temp**2
        total = total + F.cross_entropy(z[k], y) + kl
    return total


@pytest.mark.parametrize("peers", [2, 3])
def test_loss_matches_hand_formula(peers):
    torch.manual_seed(0)
    z, y = torch.randn(peers, 5, 4), torch.randint(0, 4, (5,))
    loss, logs = MutualLoss(temperature=2.0)(z, (None, y))
    torch.testing.assert_close(loss, hand_loss(z, y, 2.0))
    assert sorted(logs) == sorted(f"peer{k}.{t}" for k in range(peers) for t in ("ce", "kl"))
    torch.testing.assert_close(torch.tensor(logs["peer0.ce"]), F.cross_entropy(z[0], y))


def test_two_identical_peers_have_no_kl():
    z = torch.tensor([[1.0, 2.0, 0.5]]).expand(2, 1, 3)
    _, logs = MutualLoss()(z, (None, torch.tensor([1])))
    assert logs["peer0.kl"] == pytest.approx(0.0, abs=1e-7)


def test_target_is_detached_so_no_gradient_crosses_peers():
    torch.manual_seed(0)
    z = torch.randn(2, 4, 3, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0])
    MutualLoss(temperature=3.0)(z, (None, y))[0].backward()
    # peer 1's gradient must be that of peer 1's own loss alone, with peer 0 as a constant target.
    own = z.detach().clone().requires_grad_(True)
    temp, target = 3.0, F.softmax(z[0].detach() / 3.0, dim=1)
    own_loss = F.cross_entropy(own[1], y) + F.kl_div(F.log_softmax(own[1] / temp, 1), target, reduction="batchmean") * temp**2
    own_loss.backward()
    torch.testing.assert_close(z.grad[1], own.grad[1])


def test_ensemble_returns_mean_first_and_each_peer():
    torch.manual_seed(0)
    a, b = peer(), peer()
    x = torch.randn(4, 1, 8, 8)
    out = PeerEnsemble([a, b])(x)
    assert isinstance(out, PeerLogits)
    torch.testing.assert_close(out.stacked[1], b(x))
    torch.testing.assert_close(out[0], (a(x) + b(x)) / 2)


def test_bad_peers_raise():
    with pytest.raises(ConfigError, match="at least 2"):
        PeerEnsemble([peer()])
    same = peer()
    with pytest.raises(ConfigError, match="same module"):
        PeerEnsemble([same, same])
    mixed = PeerEnsemble([peer(), build_model("mlp", hidden=[16], input_size=8, num_classes=4)])
    with pytest.raises(ModelError, match="num_classes"):
        mixed(torch.zeros(2, 1, 8, 8))
    with pytest.raises(DataError, match="hard labels"):
        MutualLoss()(torch.zeros(2, 1, 3), (torch.zeros(1),))


def test_mutual_trains_every_peer(tiny_splits):
    torch.manual_seed(0)
    peers = [peer(), peer()]
    before = [p.features[0].fc.weight.detach().clone() for p in peers]
    train = DataLoader(tiny_splits.train, batch_size=16, shuffle=True)
    test = DataLoader(tiny_splits.test, batch_size=64)
    config = TrainConfig(epochs=3, lr=1e-2, progress=False, threads=1)
    trained = mutual(peers, train, config, val_loader=DataLoader(tiny_splits.val, batch_size=64))
    assert [id(p) for p in trained] == [id(p) for p in peers]
    for p, w in zip(trained, before):
        assert not torch.equal(p.features[0].fc.weight, w)
        assert evaluate_loss_acc(p, test)[1] > 0.6  # chance is 1/3
    assert not torch.equal(trained[0].features[0].fc.weight, trained[1].features[0].fc.weight)


def test_history_has_each_peer_and_the_ensemble(tiny_splits, tmp_path):
    train = DataLoader(tiny_splits.train, batch_size=32)
    val = DataLoader(tiny_splits.val, batch_size=64)
    mutual([peer(), peer()], train, TrainConfig(epochs=1, progress=False, threads=1), val_loader=val, out_dir=tmp_path)
    line = (tmp_path / "metrics.jsonl").read_text().splitlines()[0]
    for key in ("val_acc", "val_acc_peer0", "val_acc_peer1", "train_peer1.kl"):
        assert f'"{key}"' in line
