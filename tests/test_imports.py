import pytest

from slimkit.errors import ConfigError
from slimkit.imports import import_reference


def test_imports_nested_attribute():
    assert import_reference("os:path.join")("a", "b").replace("\\", "/") == "a/b"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("no_colon", "not a code reference"),
        ("nonexistent_pkg_xyz:f", "cannot import module 'nonexistent_pkg_xyz'"),
        ("math:nope", "has no attribute 'nope'"),
    ],
)
def test_bad_references_explain_themselves(ref, message):
    with pytest.raises(ConfigError, match=message):
        import_reference(ref)
