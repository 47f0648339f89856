import pytest

from slimkit.errors import ConfigError
from slimkit.registry import Registry, did_you_mean


def make() -> Registry:
    reg: Registry = Registry("widget")
    reg.add("resnet8", object(), doc="small")
    reg.add("resnet20", object())
    reg.add("mlp", object())
    return reg


def test_get_returns_registered_object_and_meta():
    reg = make()
    obj = object()
    reg.add("lenet5", obj, params=61706)
    assert reg.get("lenet5") is obj
    assert reg.meta("lenet5") == {"params": 61706}


def test_unknown_name_suggests_closest_and_lists_known():
    with pytest.raises(ConfigError, match=r"unknown widget 'resnet9'\. Did you mean 'resnet8'\?") as info:
        make().get("resnet9")
    assert "mlp, resnet20, resnet8" in info.value.hint


def test_names_filter_by_glob_and_sorted():
    assert make().names("resnet*") == ["resnet20", "resnet8"]
    assert list(make()) == ["mlp", "resnet20", "resnet8"]
    assert len(make()) == 3 and "mlp" in make()


def test_duplicate_registration_is_rejected():
    reg = make()
    with pytest.raises(ConfigError, match="already registered"):
        reg.add("mlp", object())


def test_register_decorator_returns_object_unchanged():
    reg: Registry = Registry("thing")

    @reg.register("f", doc="x")
    def f() -> int:
        return 3

    assert f() == 3 and reg.get("f") is f


def test_did_you_mean_empty_when_nothing_close():
    assert did_you_mean("zzzz", ["alpha", "beta"]) == ""


def test_same_definition_may_register_twice_but_another_may_not():
    reg: Registry = Registry("thing")

    def make():
        def f() -> int:
            return 1

        return f

    reg.add("f", make())
    reg.add("f", make())  # the same definition, e.g. its module imported a second time
    with pytest.raises(ConfigError, match="already registered"):
        reg.add("f", lambda: 2)
