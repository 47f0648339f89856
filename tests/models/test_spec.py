"""Model specs as typed on the command line: registry models with knobs, or the user's factories."""

import pytest

from slimkit.errors import ConfigError
from slimkit.models.spec import ModelSpec, parse_model_spec


@pytest.mark.parametrize(("text", "expected"), [
    ("cnn", ModelSpec(name="cnn")),
    ("cnn:width=0.5", ModelSpec(name="cnn", knobs={"width": 0.5})),
    ("cnn:channels=[8, 16],hidden=32,global_pool=true",
     ModelSpec(name="cnn", knobs={"channels": [8, 16], "hidden": 32, "global_pool": True})),
    ("mypkg.nets:make", ModelSpec(factory="mypkg.nets:make")),
    ("mypkg.nets:make:width=2,depth=[1,2]", ModelSpec(factory="mypkg.nets:make", knobs={"width": 2, "depth": [1, 2]})),
])
def test_specs_parse(text, expected):
    assert parse_model_spec(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("cnn:channels", "is not key=value"),
    ("cnn:width=0.5,width=1", "given twice"),
    ("", "empty"),
    ("cnn:hidden=[1,", "not a number, word or list"),
])
def test_bad_specs_say_what_is_wrong(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_model_spec(text)
