import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from slimkit.distillation import DistillConfig, distill
from slimkit.distillation.teachers import (
    TemperatureScaled,
    accelerated_teacher,
    calibrated_teacher,
    fit_temperature,
    init_from_teacher,
    teacher_ratios,
)
from slimkit.errors import ConfigError
from slimkit.export import report_of
from slimkit.train import TrainConfig

from .conftest import tiny_cnn


def test_int8_teacher_runs_on_onnx_runtime_and_agrees_with_fp32(trained_teacher, loaders):
    train, val = loaders
    fast = accelerated_teacher(trained_teacher, train, calibration_batches=2)
    x, _ = next(iter(val))
    fp32, int8 = trained_teacher(x), fast(x)
    assert type(fast).__name__ in ("OrtModule", "RoutedModule") and fast.runs_on_cpu and int8.shape == fp32.shape
    # the runtime was chosen by timing at the training batch size
    assert report_of(fast, "quantize")["runtime"]["batch_sizes"] == [train.batch_size]
    assert (fp32.argmax(1) == int8.argmax(1)).float().mean() >= 0.9
    assert not any(type(m).__name__ == "OrtModule" for m in trained_teacher.modules())  # the teacher is untouched


def test_temperature_softens_an_over_confident_teacher(trained_teacher, loaders):
    _, val = loaders
    sharp = TemperatureScaled(trained_teacher, 0.05)  # 20x sharper than the teacher: badly over-confident
    fitted = fit_temperature(sharp, val)
    assert fitted > 1.0 and fitted == pytest.approx(fit_temperature(trained_teacher, val) / 0.05, rel=0.02)
    assert calibrated_teacher(sharp, val).temperature == pytest.approx(fitted)
    with pytest.raises(ConfigError, match="validation data"):
        calibrated_teacher(sharp, None)


def test_init_from_teacher_keeps_the_teachers_strongest_channels(trained_teacher):
    student = tiny_cnn(5, channels=[4, 8], hidden=8)
    assert teacher_ratios(student, trained_teacher) == {"features.0.conv": 0.5, "features.1.conv": 0.5, "classifier.fc1": 0.5}
    init_from_teacher(student, trained_teacher)
    t_conv, s_conv = trained_teacher.features[0].conv.weight, student.features[0].conv.weight
    strongest = t_conv.abs().sum((1, 2, 3)).topk(4).indices.sort().values
    assert torch.equal(s_conv, t_conv[strongest])  # L1: the 4 largest filters, in their order
    assert torch.equal(student.classifier.out.bias, trained_teacher.classifier.out.bias)


def test_init_from_teacher_refuses_a_wider_or_different_student(trained_teacher):
    wide = tiny_cnn(0, channels=[16, 16], hidden=8)
    before = {k: v.clone() for k, v in wide.state_dict().items()}
    with pytest.raises(ConfigError, match="wider"):
        init_from_teacher(wide, trained_teacher)
    assert all(torch.equal(before[k], v) for k, v in wide.state_dict().items())  # unchanged
    deeper = tiny_cnn(0, channels=[4, 8], hidden=8, convs_per_stage=2)
    with pytest.raises(ConfigError, match="narrower copy"):
        init_from_teacher(deeper, trained_teacher)


class Recorder(nn.Module):
    """Wraps a model and keeps the inputs of its last forward pass."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.model(x)


def test_function_matching_shows_the_teacher_the_students_augmented_batch(trained_teacher, tiny_splits):
    torch.manual_seed(0)
    student, teacher = Recorder(tiny_cnn(2, channels=[4, 8], hidden=8)), Recorder(trained_teacher).eval()
    loader = DataLoader(tiny_splits.train, batch_size=16, shuffle=True)
    config = DistillConfig(train=TrainConfig(epochs=1, progress=False), augment={"shift": 1, "cutmix": 1.0, "mixup": 1.0})
    distill(student, config, loader, teacher=teacher)
    record = report_of(student, "distill")
    assert record["cache"] == "off" and record["augment"]["cutmix"] == 1.0
    train_steps = len(loader)
    student_seen = student.seen[-train_steps:]  # after the shape probes of the first batch
    teacher_seen = teacher.seen[-train_steps:]
    assert all(torch.equal(s, t) for s, t in zip(student_seen, teacher_seen))
    raw = torch.stack([tiny_splits.train[i][0] for i in range(len(tiny_splits.train))])
    first = student_seen[0]
    assert not any(torch.equal(first[0], r) for r in raw)  # augmented, not a raw sample


def test_distill_options_are_recorded_and_run_together(trained_teacher, loaders):
    train, val = loaders
    student = tiny_cnn(3, channels=[4, 8], hidden=8)
    config = DistillConfig(train=TrainConfig(epochs=1, progress=False), teacher_runtime="int8", calibrate_teacher=True,
                           init="teacher", augment={"shift": 1}, losses=[{"name": "dist", "weight": 1.0},
                                                                       {"name": "ce", "weight": 1.0}])
    distill(student, config, train, teacher=trained_teacher, val_loader=val)
    record = report_of(student, "distill")
    assert record["init"] == "teacher" and record["teacher_runtime"] == "int8" and record["teacher_temperature"] > 0
    assert len(record["history"]) == 1 and record["history"][0]["val_acc"] > 0.5
    assert trained_teacher.training is False and type(trained_teacher).__name__ != "OrtModule"


def test_config_refuses_combinations_that_cannot_work():
    with pytest.raises(ConfigError, match="cannot be hooked"):
        DistillConfig(teacher_runtime="int8", losses=[{"name": "fitnet", "student": "a", "teacher": "b"}])
    with pytest.raises(ConfigError, match="augmented batch"):
        DistillConfig(augment={"mixup": 1.0}, cache_teacher="memory")


def test_a_cached_calibrated_teacher_is_keyed_by_its_temperature(trained_teacher, loaders):
    from slimkit.distillation.teacher_cache import teacher_meta
    from slimkit.distillation.views import Identity

    train, _ = loaders
    metas = [teacher_meta(TemperatureScaled(trained_teacher, t), train.dataset, [], Identity()) for t in (2.0, 3.0)]
    assert metas[0]["teacher"] != metas[1]["teacher"]
