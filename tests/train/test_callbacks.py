"""The Callback base: every hook is a no-op and the state is empty by default."""

from __future__ import annotations

from slimkit.train import Callback


def test_base_hooks_are_noops_and_state_is_empty():
    cb = Callback()
    for hook, args in [
        ("on_fit_start", ()), ("on_epoch_start", (1,)), ("on_after_backward", ()),
        ("on_step_end", ({},)), ("on_epoch_end", (1, {})), ("on_fit_end", ()),
    ]:  # fmt: skip
        assert getattr(cb, hook)(None, *args) is None
    assert cb.state_dict() == {}
    assert cb.load_state_dict({"x": 1}) is None
