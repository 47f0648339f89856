"""Importing slimkit, or building the CLI, must stay cheap: heavy libraries load only when used."""

import subprocess
import sys

HEAVY = ("torchao", "torch_pruning", "onnx", "onnxruntime", "optuna", "tensorly", "sklearn", "matplotlib", "scipy",
         "transformers")


def imported_after(code: str) -> set[str]:
    probe = f"import sys; {code}; print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_import_slimkit_loads_no_heavy_library():
    assert imported_after("import slimkit").isdisjoint(HEAVY)


def test_cli_parser_loads_no_heavy_library():
    loaded = imported_after("from slimkit.cli import build_parser; build_parser()")
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_every_public_name_resolves():
    import slimkit

    missing = [name for name in slimkit.__all__ if getattr(slimkit, name, None) is None]
    assert missing == []


def test_unknown_attribute_raises_attribute_error():
    import pytest

    import slimkit

    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        slimkit.nope  # noqa: B018


def test_every_verb_is_a_plain_function_on_slimkit():
    import inspect

    import slimkit

    for name in ("prune", "quantize", "factorize", "share", "fuse", "lighten", "distill", "recover"):
        verb = getattr(slimkit, name)
        assert inspect.isfunction(verb), name
        assert list(inspect.signature(verb).parameters)[:2] in (["model", "config"], ["model", "teacher"]), name
    assert slimkit.distillation.DistillConfig is slimkit.DistillConfig
