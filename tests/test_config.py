from typing import Literal

import pydantic
import pytest

from slimkit.config import Config
from slimkit.errors import ConfigError


class Demo(Config):
    epochs: int = 3
    lr: float = 1e-3
    optimizer: Literal["adamw", "sgd"] = "adamw"


def test_round_trip_through_dict():
    cfg = Demo(epochs=5, optimizer="sgd")
    assert Demo.from_dict(cfg.to_dict()) == cfg
    assert cfg.to_dict() == {"type": "Demo", "version": 1, "epochs": 5, "lr": 1e-3, "optimizer": "sgd"}


def test_unknown_field_did_you_mean_and_source():
    with pytest.raises(ConfigError, match=r"recipe.yaml: Demo: unknown field 'optimiser'\. Did you mean 'optimizer'\?"):
        Demo.from_dict({"optimiser": "sgd"}, source="recipe.yaml")


def test_wrong_type_names_field_and_value():
    with pytest.raises(ConfigError, match=r"field 'epochs'.*got 'many'"):
        Demo(epochs="many")


def test_bad_literal_is_rejected_in_python_like_yaml():
    with pytest.raises(ConfigError, match="optimizer"):
        Demo(optimizer="adam")


def test_non_mapping_rejected():
    with pytest.raises(ConfigError, match="expected a mapping"):
        Demo.from_dict(["epochs"])  # type: ignore[arg-type]


def test_replace_validates_and_is_immutable():
    cfg = Demo()
    assert cfg.replace(epochs=1).epochs == 1
    with pytest.raises(ConfigError):
        cfg.replace(epochs="x")
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        cfg.epochs = 2  # type: ignore[misc]
