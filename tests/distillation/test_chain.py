import pytest
import torch

from slimkit.distillation import TAKD, DistillConfig, build_assistant, distill, distill_chain
from slimkit.errors import ConfigError
from slimkit.export import report_of
from slimkit.models import build_model
from slimkit.train import TrainConfig

from .conftest import count_forwards, tiny_cnn


def quick(epochs=1):
    return TrainConfig(epochs=epochs, progress=False)


def test_assistants_are_built_for_the_teachers_data(trained_teacher):
    ta = build_assistant({"name": "cnn", "kwargs": {"channels": [6, 12], "hidden": 12}}, trained_teacher)
    assert ta.slimkit_spec["kwargs"]["input_size"] == 8 and ta.slimkit_spec["kwargs"]["num_classes"] == 3
    half = build_assistant({"width": 0.5}, trained_teacher)
    assert half.slimkit_spec["kwargs"]["width"] == 0.5 and half(torch.zeros(2, 1, 8, 8)).shape == (2, 3)
    with pytest.raises(ConfigError, match="assistant"):
        TAKD(assistants=[{"width": 0.5, "hidden": 3}])
    with pytest.raises(ConfigError):
        TAKD(assistants=[])


def test_chain_teaches_each_model_from_the_one_before(trained_teacher, loaders):
    train, val = loaders
    assistant, student = tiny_cnn(1, channels=[6, 12], hidden=12), tiny_cnn(2, channels=[4, 8], hidden=8)
    teacher_calls, assistant_calls = count_forwards(trained_teacher), count_forwards(assistant)
    before = {k: v.clone() for k, v in assistant.state_dict().items()}
    result, steps = distill_chain(student, trained_teacher, [assistant], train, DistillConfig(train=quick(),
                                  cache_teacher="off"), val_loader=val)
    assert len(steps) == 1 and steps[0].best_val_acc is not None and result.best_val_acc is not None
    assert any(not torch.equal(before[k], v) for k, v in assistant.state_dict().items())  # the assistant trained
    # teacher: once per batch (plus the shape probe) while the assistant learned; the assistant then
    # taught the student: its forwards include one per student batch
    assert teacher_calls[0] == len(train) + 1 and assistant_calls[0] >= 2 * len(train)
    assert assistant.training  # handed back trainable


def test_takd_config_runs_through_the_distill_verb(trained_teacher, loaders, tmp_path):
    train, val = loaders
    student = build_model("cnn", input_size=8, num_classes=3, channels=[4, 8], hidden=8)
    config = TAKD(assistants=[{"width": 0.75}], assistant_epochs=2, train=quick())
    distill(student, config, train, teacher=trained_teacher, val_loader=val, out_dir=tmp_path)
    record = report_of(student, "distill")
    (assistant,) = record["assistants"]
    assert assistant["spec"] == {"width": 0.75} and len(assistant["history"]) == 2 and len(record["history"]) == 1
    assert (tmp_path / "assistant0" / "last.pt").is_file() and (tmp_path / "student" / "last.pt").is_file()
