import pytest
import torch
from torch.utils.data import DataLoader

from slimkit.distillation import DistillConfig
from slimkit.distillation.auto import choose_distillation, default_candidates, subset_loader
from slimkit.errors import ConfigError
from slimkit.train import TrainConfig

from .conftest import tiny_cnn


def make_student():
    return tiny_cnn(4, channels=[4, 8], hidden=8)


def test_candidates_fit_the_pair_and_the_schedule(trained_teacher, loaders):
    train, _ = loaders
    short = DistillConfig(train=TrainConfig(epochs=6))
    names = [n for n, _ in default_candidates(short, make_student(), trained_teacher, train)]
    assert names == ["init from teacher", "as configured", "DIST"]  # function matching needs long schedules
    long = [n for n, _ in default_candidates(short.replace(train=TrainConfig(epochs=30)), make_student(), trained_teacher,
                                             train)]
    assert long[-1] == "function matching"
    deeper = [n for n, _ in default_candidates(short, tiny_cnn(0, channels=[4, 8, 8], hidden=8), trained_teacher, train)]
    assert "init from teacher" not in deeper  # not a narrower copy of the teacher


def test_the_best_validation_score_wins_and_the_budget_is_kept(trained_teacher, loaders):
    train, val = loaders
    base = DistillConfig(train=TrainConfig(epochs=1, progress=False))
    candidates = [("as configured", {}), ("too hot", {"losses": [{"name": "kd", "weight": 1.0, "temperature": 50.0}]}),
                  ("init", {"init": "teacher"})]
    choice = choose_distillation(make_student, trained_teacher, train, val, base, budget_s=600, fraction=0.5,
                                 candidates=candidates)
    scored = {t.name: t.val_acc for t in choice.trials}
    assert set(scored) == {"as configured", "too hot", "init"} and None not in scored.values()
    assert choice.name == max(scored, key=scored.get) and choice.config.to_dict() != {}
    assert choice.to_dict()["trials"][0]["name"] == "as configured"
    tight = choose_distillation(make_student, trained_teacher, train, val, base, budget_s=1e-3, candidates=candidates)
    assert [t.val_acc is not None for t in tight.trials] == [True, False, False] and tight.name == "as configured"
    assert "budget" in tight.trials[1].note


def test_failed_candidates_are_recorded_not_raised(trained_teacher, loaders):
    train, val = loaders
    base = DistillConfig(train=TrainConfig(epochs=1, progress=False))
    wide = [("bad", {"init": "teacher"}), ("ok", {})]
    choice = choose_distillation(lambda: tiny_cnn(0, channels=[16, 16], hidden=8), trained_teacher, train, val, base,
                                 budget_s=600, candidates=wide)
    assert choice.name == "ok" and choice.trials[0].note.startswith("failed: init from teacher")


def test_subset_loader_takes_a_seeded_share(loaders):
    train, _ = loaders
    half = subset_loader(train, 0.5, seed=1)
    n = len(train.dataset)
    assert len(half.dataset) == round(n / 2) and half.batch_size == train.batch_size
    assert half.dataset.indices == subset_loader(train, 0.5, seed=1).dataset.indices
    assert subset_loader(train, 1.0) is train
    with pytest.raises(ConfigError):
        subset_loader(DataLoader([torch.zeros(1)], batch_size=None), 0.5)
