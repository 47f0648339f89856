"""Deriving a student from the teacher's spec by width and depth, and CLI student specs."""

from __future__ import annotations

import pytest

from slimkit.distillation import derive_student, student_spec
from slimkit.distillation.derive import DEPTH_RULES
from slimkit.errors import ConfigError
from slimkit.models import DEFAULT_TEACHER, MODELS, build_model


def params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_derives_a_narrower_student_that_builds(name):
    teacher = build_model(name, input_size=8)
    student_name, kwargs = derive_student(teacher, width=0.5)
    student = build_model(student_name, **kwargs)
    assert student_name == name and kwargs["width"] == 0.5
    assert params(student) < params(teacher)
    assert teacher.slimkit_spec["kwargs"]["width"] == 1.0  # the teacher's spec is not touched


def test_default_teacher_at_quarter_width():
    name, kwargs = derive_student(DEFAULT_TEACHER, width=0.25)
    student = build_model(name, **kwargs)
    assert student.features[0].conv.out_channels == 8 and kwargs["dropout"] == 0.0


@pytest.mark.parametrize("name, knob, teacher, depth, expected", [
    ("cnn", "convs_per_stage", 2, 0.5, 1),
    ("cnn", "convs_per_stage", 1, 2.0, 2),
    ("mlp", "hidden", [64, 32, 16], 1 / 3, [64]),
    ("mlp", "hidden", [64], 2.0, [64, 64]),
    ("resnet", "depth", 20, 0.34, 8),
    ("resnet", "depth", 14, 2.0, 26),
])
def test_depth_scales_the_layer_count(name, knob, teacher, depth, expected):
    _, kwargs = derive_student((name, {knob: teacher}), width=1.0, depth=depth)
    assert kwargs[knob] == expected
    build_model(name, input_size=8, **kwargs)


def test_models_without_a_depth_knob_refuse_depth():
    assert "lenet5" not in DEPTH_RULES
    with pytest.raises(ConfigError, match="'lenet5' has no depth knob"):
        derive_student(("lenet5", {}), depth=0.5)
    with pytest.raises(ConfigError, match="width must be a number > 0"):
        derive_student(("cnn", {}), width=0)


def test_cli_student_specs():
    teacher = build_model("cnn", input_size=8)
    assert student_spec("width=0.5,depth=1", teacher)[1]["width"] == 0.5
    assert student_spec("mlp:hidden=[8]", teacher) == ("mlp", {"hidden": [8]})
    with pytest.raises(ConfigError, match="takes only width and depth, got hidden"):
        student_spec("width=0.5,hidden=3", teacher)
