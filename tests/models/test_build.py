"""build_model: spec round-trip, knob errors, default teacher and student."""

from __future__ import annotations

import json

import pytest
import torch

from slimkit.errors import ConfigError
from slimkit.models import (
    DEFAULT_STUDENT,
    DEFAULT_TEACHER,
    MODELS,
    build_model,
    model_knobs,
)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", MODELS.names())
def test_spec_round_trips_through_json(name: str) -> None:
    model = build_model(name, width=0.5, input_size=8)
    spec = json.loads(json.dumps(model.slimkit_spec))
    assert spec["name"] == name
    assert set(spec["kwargs"]) == set(model_knobs(name))
    again = build_model(spec["name"], **spec["kwargs"])
    assert n_params(again) == n_params(model)
    assert list(again.state_dict()) == list(model.state_dict())
    assert again.slimkit_spec == spec


def test_spec_stores_lists_and_explicit_values() -> None:
    spec = build_model("mobilenet", channels=(8, 16), strides=(2, 2)).slimkit_spec
    assert spec["kwargs"]["channels"] == [8, 16]
    assert spec["kwargs"]["strides"] == [2, 2]
    assert spec["kwargs"]["stem_channels"] == 16


@pytest.mark.parametrize("name", MODELS.names())
def test_unknown_knob_names_model_and_valid_knobs(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_model(name, widht=0.5)
    text = str(info.value)
    assert f"model '{name}' has no knob 'widht'. Did you mean 'width'?" in text
    for knob in model_knobs(name):
        assert knob in info.value.hint


def test_unsavable_kwarg_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"model kwarg 'cnn\.dropout' is a Tensor"):
        build_model("cnn", dropout=torch.tensor(0.1))


def test_model_knobs_returns_defaults() -> None:
    assert model_knobs("resnet")["depth"] == 20
    assert model_knobs("mlp")["hidden"] == (300, 100)


def test_default_teacher_and_student_sizes() -> None:
    teacher = build_model(DEFAULT_TEACHER[0], **DEFAULT_TEACHER[1])
    student = build_model(DEFAULT_STUDENT[0], **DEFAULT_STUDENT[1])
    assert n_params(teacher) == 390_634
    assert n_params(student) == 14_002
    assert 300_000 <= n_params(teacher) <= 1_000_000
    assert n_params(student) <= 15_000
    convs = [m.out_channels for m in teacher.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs == [32, 64, 128]
    assert teacher.classifier.fc1.out_features == 256
    assert [m.out_channels for m in student.modules() if isinstance(m, torch.nn.Conv2d)] == [8, 16]


def test_defaults_are_json_serialisable() -> None:
    assert json.loads(json.dumps([DEFAULT_TEACHER, DEFAULT_STUDENT]))[0][0] == "cnn"
