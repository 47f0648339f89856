"""Shared pieces of the property-based fuzz tests (``pytest -m fuzz``).

Every generated case must end in success or a SlimkitError subclass (any other exception fails
the test, with hypothesis's smallest example) within hypothesis's one-second deadline. Each test
records how many cases it ran (``record_property("fuzz_cases", n)``); tests/conftest.py prints the
total over all fuzz tests at the end of the session. ``SLIMKIT_FUZZ_SCALE`` multiplies every
example count (CI may raise it; the default keeps the suite fast).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from slimkit.errors import SlimkitError

SCALE = float(os.environ.get("SLIMKIT_FUZZ_SCALE", "1"))
#: Cases run per target, by the target's name.
CASES: Counter[str] = Counter()


def fuzz(examples: int) -> settings:
    """Hypothesis settings for one target: ``examples`` cases (times SCALE), one second each at most."""
    return settings(
        max_examples=max(1, int(examples * SCALE)), deadline=timedelta(seconds=1), database=None,
        derandomize=os.environ.get("CI") == "true",  # CI: the same cases every run; locally: new ones
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


def count(name: str) -> None:
    CASES[name] += 1


def run(target: Callable[..., None], record_property: Callable[[str, Any], None], minimum: int, *args: Any) -> None:
    """Run a hypothesis target, record its case count, and check it ran at least ``minimum`` cases."""
    name = target.__name__
    CASES[name] = 0
    target(*args)
    record_property("fuzz_cases", CASES[name])
    assert CASES[name] >= max(1, int(minimum * min(SCALE, 1.0)))


def outcome(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``call``'s result, or the SlimkitError it raised (one line, plus a hint); anything else propagates."""
    try:
        return call(*args, **kwargs)
    except SlimkitError as exc:
        message = str(exc).split("\n  hint:")[0]
        assert message.strip(), "an error must say what went wrong"
        assert "Traceback" not in message
        return exc


#: Plain JSON values, small: what an edited run-folder file may hold.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=12)
    | st.sampled_from([0, 1, -1, 2**31, 2**63, 10**11, 1e300, "", "../../..", "/etc", "os:system", "done", "mlp"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@st.composite
def mutate_bytes(draw: st.DrawFn, data: bytes, header: int = 64) -> bytes:
    """Up to four random edits (bit flips, random 32-bit values, truncation, insertions, deletions),
    biased to the first ``header`` bytes."""
    out = bytearray(data)
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "u32", "truncate", "insert", "delete"]))
        end = max(1, min(len(out), header) if draw(st.booleans()) else len(out))
        at = draw(st.integers(0, end - 1))
        if kind == "flip" and out:
            out[at % len(out)] ^= 1 << draw(st.integers(0, 7))
        elif kind == "u32":
            value = draw(st.sampled_from([0, 1, 2**31 - 1, 2**31, 2**32 - 1]) | st.integers(0, 2**32 - 1))
            out[at:at + 4] = value.to_bytes(4, draw(st.sampled_from(["big", "little"])))
        elif kind == "truncate":
            del out[at:]
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del out[at:at + draw(st.integers(1, 8))]
    return bytes(out)


@st.composite
def mutate_json(draw: st.DrawFn, data: Any, edits: int = 3) -> Any:
    """``data`` (plain JSON) with up to ``edits`` values replaced, keys removed, or types changed."""
    import copy

    data = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, edits))):
        parents: list[tuple[Any, Any]] = []
        todo = [data]
        while todo:
            node = todo.pop()
            keys = list(node) if isinstance(node, dict) else range(len(node)) if isinstance(node, list) else []
            for key in keys:
                parents.append((node, key))
                todo.append(node[key])
        if not parents:
            return draw(json_values)
        node, key = draw(st.sampled_from(parents))
        action = draw(st.sampled_from(["replace", "replace", "delete", "wrap"]))
        if action == "delete" and isinstance(node, dict):
            del node[key]
        elif action == "wrap":
            node[key] = [node[key]] if draw(st.booleans()) else {"x": node[key]}
        else:
            node[key] = draw(json_values)
    return data
