"""DistillationLoss and the distill verb: online vs cached teachers, adapters, bad input."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from slimkit.distillation import DistillationLoss, DistillConfig, run_distillation, with_indices
from slimkit.distillation.core import freeze_teacher
from slimkit.errors import ConfigError, DataError

from .conftest import count_forwards, tiny_cnn

FITNET = [{"name": "kd", "weight": 0.9}, {"name": "ce", "weight": 0.1},
          {"name": "fitnet", "weight": 1.0, "student": "features.1", "teacher": "features.1"}]


def run(teacher, loaders, quick, cache, losses=None, seed=0, **extra):
    student = tiny_cnn(seed)
    config = DistillConfig(train=quick.replace(epochs=2), cache_teacher=cache, **({"losses": losses} if losses else {}),
                           **extra)
    result = run_distillation(student, teacher, loaders[0], config, val_loader=loaders[1])
    return student, result


@pytest.mark.parametrize("losses", [None, FITNET], ids=["kd+ce", "fitnet"])
def test_cached_and_online_teachers_train_the_same_student(trained_teacher, loaders, quick, losses):
    online, r_online = run(trained_teacher, loaders, quick, "off", losses)
    cached, r_cached = run(trained_teacher, loaders, quick, "memory", losses)
    assert (r_online.cache, r_cached.cache) == ("off", "memory")
    for a, b in zip(r_online.history, r_cached.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["train_kd"] == pytest.approx(b["train_kd"], rel=1e-5)
    for (name, p), q in zip(online.state_dict().items(), cached.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)


def test_cached_epochs_run_no_teacher_forward(loaders, quick):
    teacher = tiny_cnn(1).eval().requires_grad_(False)
    calls = count_forwards(teacher)
    batches = -(-len(loaders[0].dataset) // loaders[0].batch_size)
    run(teacher, loaders, quick, "memory")  # 2 epochs
    assert calls[0] == batches  # one pass to build the cache, none while training
    calls[0] = 0
    run(teacher, loaders, quick, "off")
    assert calls[0] == 2 * batches + 1  # every step of both epochs, plus the adapter/shape batch


def test_auto_caches_plain_data_and_runs_online_with_augmentation(trained_teacher, tiny_splits, quick):
    from slimkit.data import make_loaders

    plain = make_loaders(tiny_splits, batch_size=16)
    augmented = make_loaders(tiny_splits, batch_size=16, augment=True)
    assert run_distillation(tiny_cnn(), trained_teacher, plain.train, DistillConfig(train=quick)).cache == "memory"
    assert run_distillation(tiny_cnn(), trained_teacher, augmented.train, DistillConfig(train=quick)).cache == "off"
    with pytest.raises(ConfigError, match="augments its inputs"):
        run_distillation(tiny_cnn(), trained_teacher, augmented.train, DistillConfig(train=quick, cache_teacher="memory"))


def test_auto_runs_online_when_the_cache_would_not_fit(trained_teacher, loaders, quick):
    config = DistillConfig(train=quick, cache_max_mb=1e-4)  # ~100 bytes: less than one sample's logits x 108
    assert run_distillation(tiny_cnn(), trained_teacher, loaders[0], config).cache == "off"


def test_disk_cache_is_reused_without_any_teacher_forward(trained_teacher, loaders, quick, tmp_path):
    config = DistillConfig(train=quick, cache_teacher="disk", cache_dir=str(tmp_path))
    first = run_distillation(tiny_cnn(), trained_teacher, loaders[0], config)
    teacher = copy.deepcopy(trained_teacher)
    calls = count_forwards(teacher)
    second = run_distillation(tiny_cnn(), teacher, loaders[0], config)
    assert (first.cache, first.cache_hit, second.cache, second.cache_hit) == ("disk", False, "disk", True)
    assert calls[0] == 0
    torch.testing.assert_close(first.history[0]["train_loss"], second.history[0]["train_loss"])


def test_disk_cache_needs_a_folder(trained_teacher, loaders, quick, tmp_path):
    with pytest.raises(ConfigError, match="cache_dir"):
        run_distillation(tiny_cnn(), trained_teacher, loaders[0], DistillConfig(train=quick, cache_teacher="disk"))
    run_distillation(tiny_cnn(), trained_teacher, loaders[0], DistillConfig(train=quick, cache_teacher="disk"), out_dir=tmp_path)
    assert len(list((tmp_path / "teacher_cache").glob("teacher0-*.safetensors"))) == 1


def test_adapters_are_built_before_the_optimizer_and_trained(trained_teacher, loaders, quick, recwarn):
    result = run_distillation(tiny_cnn(), trained_teacher, loaders[0], DistillConfig(train=quick, losses=FITNET))
    assert not [w for w in recwarn if "LazyAdapter" in str(w.message)]  # never created inside a step
    assert result.history[0]["train_fitnet"] > 0


def test_prepare_creates_adapters_that_the_optimizer_then_updates(trained_teacher, loaders):
    student = tiny_cnn()
    batch = next(iter(loaders[0]))
    with DistillationLoss(student, trained_teacher, FITNET) as loss:
        assert loss.prepare(student, batch) == ["terms.fitnet.adapter.proj.weight", "terms.fitnet.adapter.proj.bias"]
        assert [n for n, _ in loss.named_parameters()] == [
            "loss.terms.fitnet.adapter.proj.weight", "loss.terms.fitnet.adapter.proj.bias"]
        before = [p.detach().clone() for p in loss.parameters()]
        optimizer = torch.optim.SGD([*student.parameters(), *loss.parameters()], lr=0.1)
        x, y = batch
        value, _ = loss(student(x), (x, y))
        value.backward()
        optimizer.step()
    assert all(not torch.equal(a, b) for a, b in zip(before, loss.parameters()))


def test_distillation_loss_in_a_hand_written_loop(trained_teacher, loaders):
    torch.manual_seed(0)
    student = tiny_cnn(3)
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-2)
    x, y = next(iter(loaders[0]))
    with DistillationLoss(student, trained_teacher, [{"name": "kd", "temperature": 2.0}]) as loss_fn:
        losses = []
        for _ in range(15):
            loss, logs = loss_fn(student(x), (x, y))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(logs["kd"])
    assert losses[-1] < 0.5 * losses[0]
    assert not any(m._forward_hooks for m in student.modules())  # hooks gone after the with block


def test_cached_loss_in_own_loop_reads_indices(trained_teacher, loaders):
    from slimkit.distillation import TeacherCache
    from slimkit.distillation.teacher_cache import compute_outputs

    ordered = DataLoader(loaders[0].dataset, batch_size=32)
    cache = compute_outputs(trained_teacher, ordered, [])
    assert isinstance(cache, TeacherCache) and len(cache) == len(loaders[0].dataset)
    student = tiny_cnn()
    with DistillationLoss(student, trained_teacher, cache=[cache]) as cached, \
            DistillationLoss(student, trained_teacher) as online:
        x, y, idx = next(iter(with_indices(loaders[0])))
        a, _ = cached(student(x), (x, y, idx))
        b, _ = online(student(x), (x, y))
        torch.testing.assert_close(a, b)
        with pytest.raises(DataError, match="with_indices"):
            cached(student(x), (x, y))


def test_teacher_in_training_mode_is_frozen_with_a_warning():
    teacher = tiny_cnn(2).train()
    with pytest.warns(UserWarning, match="was in training mode and had requires_grad=True"):
        freeze_teacher(teacher)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    with pytest.warns(UserWarning, match="froze it"):
        DistillationLoss(tiny_cnn(), tiny_cnn(2)).close()


def test_class_count_mismatch_names_both_counts(loaders, quick):
    teacher = tiny_cnn(1).eval().requires_grad_(False)
    student = build_four_class()
    with pytest.raises(ConfigError, match="student predicts 4 classes but the teacher predicts 3"):
        run_distillation(student, teacher, loaders[0], DistillConfig(train=quick))
    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))  # no spec: caught on the first batch
    with pytest.raises(ConfigError, match="4 classes but the teacher predicts 3"):
        run_distillation(plain, teacher, loaders[0], DistillConfig(train=quick))


def build_four_class():
    from slimkit.models import build_model

    return build_model("mlp", input_size=8, num_classes=4, hidden=[8])


def test_unknown_feature_path_lists_the_nearest(trained_teacher):
    losses = [{"name": "at", "student": "features.1", "teacher": "feature.1"}]
    with pytest.raises(ConfigError, match="no module 'feature.1'.*Did you mean 'features.1'"):
        DistillationLoss(tiny_cnn(), trained_teacher, losses)


def test_distilled_student_learns_to_agree_with_the_teacher(trained_teacher, tiny_splits, loaders, quick):
    # At this size KD does not reliably beat training alone (bench/distill.py measures that on
    # Fashion-MNIST); here the student must learn the task and move towards the teacher.
    from slimkit.evaluate import predict

    test = DataLoader(tiny_splits.test, batch_size=64)
    teacher_labels = predict(trained_teacher, test).labels
    student = tiny_cnn()
    before = (predict(student, test).labels == teacher_labels).float().mean()
    result = run_distillation(student, trained_teacher, loaders[0], DistillConfig(train=quick.replace(epochs=3, lr=1e-2)))
    after = predict(student, test)
    assert (after.labels == after.targets).float().mean() > 0.55  # chance is 1/3
    assert (after.labels == teacher_labels).float().mean() > before + 0.2
    assert result.best_epoch is not None and len(result.history) == 3


def test_resume_continues_with_the_adapters_from_the_checkpoint(trained_teacher, loaders, quick, tmp_path):
    from slimkit.train import Callback

    class Crash(Callback):
        def on_epoch_start(self, trainer, epoch):
            if epoch == 2:
                raise KeyboardInterrupt

    config = DistillConfig(train=quick.replace(epochs=2), losses=FITNET)
    full = tiny_cnn()
    whole = run_distillation(full, trained_teacher, loaders[0], config, out_dir=tmp_path / "a")
    part = tiny_cnn()
    with pytest.raises(KeyboardInterrupt):
        run_distillation(part, trained_teacher, loaders[0], config, out_dir=tmp_path / "b", callbacks=[Crash()])
    part = tiny_cnn(5)  # a fresh process would rebuild the student; the checkpoint restores it
    resumed = run_distillation(part, trained_teacher, loaders[0], config, out_dir=tmp_path / "b", resume=True)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert resumed.history[-1]["train_loss"] == pytest.approx(whole.history[-1]["train_loss"], rel=1e-5)
    for p, q in zip(full.parameters(), part.parameters()):
        torch.testing.assert_close(p, q)
