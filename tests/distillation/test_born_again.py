import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from slimkit.data import load_dataset
from slimkit.distillation.born_again import GenerationEnsemble, born_again, fresh_copy
from slimkit.distillation.config import DistillConfig
from slimkit.errors import ConfigError, ModelError
from slimkit.models import build_model
from slimkit.train import TrainConfig, evaluate_loss_acc, train


@pytest.fixture(scope="module")
def teacher():
    # Trained once per module (the tests only read it): the same data as ``tiny_splits``.
    splits = load_dataset("synthetic", num_classes=3, shape=(1, 8, 8), size=120, test_size=30)
    torch.manual_seed(0)
    net = build_model("mlp", hidden=[16], input_size=8, num_classes=3)
    train(net, DataLoader(splits.train, batch_size=16, shuffle=True), epochs=3, lr=1e-2, progress=False, threads=1)
    return net.eval().requires_grad_(False).requires_grad_(False)


def config(epochs=2):
    return DistillConfig(train=TrainConfig(epochs=epochs, lr=1e-2, progress=False, threads=1))


def test_generations_are_distinct_models_of_the_same_architecture(teacher, tiny_splits, tmp_path):
    loader = DataLoader(tiny_splits.train, batch_size=16, shuffle=True)
    keys = {k: v.shape for k, v in teacher.state_dict().items()}
    with pytest.warns(UserWarning, match="froze"):  # the user's teacher is frozen by distill, if needed
        born_again(copy.deepcopy(teacher).train(), loader, generations=1, config=config(1))
    gens = born_again(teacher, loader, generations=3, config=config(), out_dir=tmp_path)
    assert len(gens) == 3 and len({id(g) for g in gens} | {id(teacher)}) == 4
    for gen in gens:
        assert type(gen) is type(teacher) and {k: v.shape for k, v in gen.state_dict().items()} == keys
        assert gen.slimkit_spec == teacher.slimkit_spec
        assert gen.training and all(p.requires_grad for p in gen.parameters())
        assert evaluate_loss_acc(gen, DataLoader(tiny_splits.test, batch_size=64))[1] > 0.6
    weights = [g.features[0].fc.weight for g in (teacher, *gens)]
    assert all(not torch.equal(a, b) for i, a in enumerate(weights) for b in weights[i + 1:])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen1", "gen2", "gen3"]
    assert (tmp_path / "gen3" / "metrics.jsonl").is_file()


def test_each_generation_learns_from_the_previous_one(teacher, tiny_splits, monkeypatch):
    from slimkit.distillation import offline

    calls = []
    monkeypatch.setattr(offline, "run_distillation", lambda s, t, *a, **k: calls.append((s, t)))
    gens = born_again(teacher, DataLoader(tiny_splits.train, batch_size=16), generations=3)
    assert [t for _, t in calls] == [teacher, gens[0], gens[1]]
    assert [s for s, _ in calls] == gens


def test_fresh_copy_reinitialises_plain_modules_and_rejects_unknown_params():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.LazyLinear(3))
    net(torch.zeros(1, 1, 4, 4))
    net.requires_grad_(False).eval()
    twin = fresh_copy(net)
    assert not torch.equal(twin[0].weight, net[0].weight)
    assert twin.training and twin[0].weight.requires_grad

    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.gain = nn.Parameter(torch.ones(2))

    with pytest.raises(ModelError, match="'1' \\(Scale\\).*no reset_parameters"):
        fresh_copy(nn.Sequential(nn.Linear(2, 2), Scale()))


def test_bad_arguments(teacher, tiny_splits):
    loader = DataLoader(tiny_splits.train, batch_size=16)
    with pytest.raises(ConfigError, match="generations"):
        born_again(teacher, loader, generations=0)
    with pytest.raises(ConfigError, match="DistillConfig"):
        born_again(teacher, loader, config=TrainConfig())
    with pytest.raises(ConfigError, match="new nn.Module"):
        born_again(teacher, loader, build=lambda: teacher)


def test_generation_ensemble_averages_logits():
    a, b = nn.Linear(2, 3), nn.Linear(2, 3)
    x = torch.randn(4, 2)
    torch.testing.assert_close(GenerationEnsemble([a, b])(x), (a(x) + b(x)) / 2)
