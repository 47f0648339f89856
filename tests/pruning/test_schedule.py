import pytest
import torch

from slimkit.distillation import RecoveryConfig
from slimkit.errors import ConfigError
from slimkit.evaluate import count_macs
from slimkit.models import build_model
from slimkit.pruning import (
    GradualPruning,
    StructuredPruning,
    UnstructuredPruning,
    cubic_sparsity,
    gradual,
    iterative,
    one_shot,
    sparsity,
)
from slimkit.train import TrainConfig, Trainer


@pytest.mark.parametrize(("initial", "final", "start", "steps", "interval"), [(0.0, 0.9, 0, 10, 1), (0.2, 0.8, 5, 4, 3)])
def test_cubic_schedule_matches_zhu_and_gupta(initial, final, start, steps, interval):
    for t in range(start, start + steps * interval + 1, interval):
        expected = final + (initial - final) * (1 - (t - start) / (steps * interval)) ** 3
        assert cubic_sparsity(t, final=final, initial=initial, start=start, steps=steps, interval=interval) == pytest.approx(expected)
    assert cubic_sparsity(start - 1, final=final, initial=initial, start=start, steps=steps, interval=interval) == initial
    assert cubic_sparsity(10**6, final=final, initial=initial, start=start, steps=steps, interval=interval) == final
    # Between pruning steps the sparsity holds.
    held = cubic_sparsity(start + interval, final=final, initial=initial, start=start, steps=steps, interval=interval)
    assert cubic_sparsity(start + 2 * interval - 1, final=final, initial=initial, start=start, steps=steps,
                          interval=interval) == held


def test_cubic_schedule_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="steps >= 1"):
        cubic_sparsity(0, final=0.5, steps=0)
    with pytest.raises(ConfigError, match="initial"):
        cubic_sparsity(0, final=0.5, initial=0.7, steps=3)


def test_gradual_pruning_runs_inside_the_trainer(tiny_loader):
    model = build_model("mlp", hidden=[32], input_size=8)
    callback = GradualPruning(UnstructuredPruning(amount=0.8, scope="global"), steps=4, interval=1, start=1)
    result = Trainer(model, TrainConfig(epochs=2, lr=0.01, progress=False), callbacks=[callback]).fit(tiny_loader)
    # 3 batches per epoch: steps 1..5 prune, so the final sparsity is reached in epoch 2.
    assert [round(m["sparsity"], 4) for m in result.history] == [round(cubic_sparsity(3, final=0.8, steps=4, start=1), 4), 0.8]
    assert sparsity(model)["total"] == pytest.approx(0.8, abs=1e-3)


def test_iterative_unstructured_calls_finetune_each_step():
    model = build_model("mlp", hidden=[32], input_size=8)
    seen = []
    iterative(model, UnstructuredPruning(amount=0.875), steps=3, finetune=lambda m: seen.append(sparsity(m)["total"]))
    assert seen == pytest.approx([0.5, 0.75, 0.875], abs=2e-3)


def test_iterative_structured_reaches_the_macs_target_in_steps():
    model = build_model("cnn", channels=[16, 32], hidden=32, input_size=8)
    macs = count_macs(model, torch.zeros(1, 1, 8, 8))
    iterative(model, StructuredPruning(target_macs=0.25), steps=2)
    changes = [c["kind"] for c in model.slimkit_history if c["kind"] != "report"]  # reports record, change nothing
    assert changes == ["prune_channels", "prune_channels"]
    assert 0.15 < count_macs(model, torch.zeros(1, 1, 8, 8)) / macs <= 0.25


def test_one_shot_is_a_single_step():
    model = build_model("mlp", hidden=[32], input_size=8)
    calls = []
    one_shot(model, StructuredPruning(ratio=0.5), finetune=lambda m: calls.append(m))
    assert len(calls) == 1 and model.features[0].fc.out_features == 16


def test_gradual_retrains_to_each_configs_own_sparsity(tiny_loader):
    torch.manual_seed(0)
    model = build_model("mlp", hidden=[32], input_size=8)
    dense = model.features[0].fc.weight.detach().clone()
    plan = [UnstructuredPruning(amount=0.9, include=("features.*",)), UnstructuredPruning(amount=0.5, include=("classifier.*",))]
    gradual(model, plan, tiny_loader, RecoveryConfig(epochs=2, lr=1e-2), ramp=0.5, ramp_steps=3)
    layers = sparsity(model)["layers"]
    assert layers["features.0.fc"] == pytest.approx(0.9, abs=1e-2)
    assert layers["classifier.out"] == pytest.approx(0.5, abs=1e-2)
    weight = model.features[0].fc.weight.detach()
    kept = weight != 0
    assert not torch.allclose(weight[kept], dense[kept])  # the survivors were retrained


def test_gradual_reaches_the_final_sparsity_even_when_the_ramp_outlasts_training(tiny_loader):
    model = build_model("mlp", hidden=[32], input_size=8)
    # 3 batches, 1 epoch: 20 planned steps cannot all happen; the final amount is applied at the end.
    gradual(model, UnstructuredPruning(amount=0.8), tiny_loader, RecoveryConfig(epochs=1, distill_from="none"),
            ramp=1.0, ramp_steps=20)
    assert sparsity(model)["total"] == pytest.approx(0.8, abs=1e-3)


@pytest.mark.parametrize(("configs", "kwargs", "match"), [
    (StructuredPruning(ratio=0.5), {"epochs": 1}, "UnstructuredPruning"),
    ([], {"epochs": 1}, "UnstructuredPruning"),
    (UnstructuredPruning(amount=0.5), {"epochs": 0}, "epochs >= 1"),
    (UnstructuredPruning(amount=0.5), {"epochs": 1, "ramp": 0}, "ramp"),
])
def test_gradual_rejects_bad_arguments(tiny_loader, configs, kwargs, match):
    recovery = RecoveryConfig(epochs=kwargs.pop("epochs"))
    with pytest.raises(ConfigError, match=match):
        gradual(build_model("mlp", hidden=[8], input_size=8), configs, tiny_loader, recovery, **kwargs)


def test_gradual_needs_a_sized_loader():
    batches = iter([(torch.randn(4, 8), torch.zeros(4, dtype=torch.long))])
    with pytest.raises(ConfigError, match="length"):
        gradual(build_model("mlp", hidden=[8], input_size=8), UnstructuredPruning(amount=0.5), batches,
                RecoveryConfig(epochs=1))
