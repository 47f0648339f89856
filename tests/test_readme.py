"""README.md stays true: its commands, flags, links and Python names exist, and its example runs.

The checks read the README and the code it describes (the argparse parser built in-process,
imports, config classes); nothing is spawned and nothing is trained.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from slimkit.cli import build_parser
from slimkit.config import Config

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
BLOCKS = [(lang, body) for lang, body in FENCE.findall(README)]
PROSE = FENCE.sub("", README)
PYTHON = [body for lang, body in BLOCKS if lang == "python"]
SHELL = [body for lang, body in BLOCKS if lang in ("bash", "text", "sh", "")]
FRESH_MACHINE = ["bash scripts/main.sh", "bash scripts/test.sh"]


def _subparsers() -> dict[str, Any]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return dict(action.choices)


COMMANDS = _subparsers()


def command_lines() -> list[list[str]]:
    """Every slimkit invocation in the README's code blocks, as tokens after ``slimkit``
    (``python -m slimkit.cli`` and ``torchrun ... -m slimkit.cli`` count too); ``a | b`` is two,
    and a bare word after ``|`` (``slimkit datasets | models``) is a command of its own."""
    found = []
    for body in SHELL:
        for line in body.splitlines():
            line = line.split("  #", 1)[0].strip()
            for n, part in enumerate(line.split(" | ")):
                tokens = shlex.split(part.replace("[", " ").replace("]", " "))
                if "slimkit.cli" in tokens:
                    found.append(tokens[tokens.index("slimkit.cli") + 1:])
                elif tokens[:1] == ["slimkit"]:
                    found.append(tokens[1:])
                elif n > 0 and len(tokens) == 1 and found and found[-1] is not None:
                    found.append(tokens)
    return found


def test_the_fresh_machine_commands_are_exactly_the_two_scripts():
    shell_lines = [line.strip() for body in SHELL for line in body.splitlines()]
    for command in FRESH_MACHINE:
        assert shell_lines.count(command) == 1, f"README must show `{command}` once in a code block"
    others = [line for line in shell_lines if "bash scripts/" in line and line not in FRESH_MACHINE]
    assert not others, f"README shows other script commands: {others}"
    assert "bash scripts/" not in PROSE.replace("`bash scripts/main.sh`", "").replace("`bash scripts/test.sh`", "")


def test_every_command_and_flag_shown_is_accepted_by_the_parser():
    lines = command_lines()
    assert len(lines) >= 20, "the command-line block was not found"
    shown = set()
    for tokens in lines:
        name, args = tokens[0], tokens[1:]
        assert name in COMMANDS, f"README shows `slimkit {name}`, which is not a command ({sorted(COMMANDS)})"
        shown.add(name)
        actions = {opt: a for a in COMMANDS[name]._actions for opt in a.option_strings}
        for i, arg in enumerate(args):
            if not arg.startswith("--"):
                continue
            flag, _, inline = arg.partition("=")
            assert flag in actions, f"`slimkit {name}` has no flag {flag} (README: {' '.join(tokens)})"
            choices = actions[flag].choices
            value = inline or (args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("-") else None)
            if choices is not None and value is not None:
                assert value in choices, f"`slimkit {name} {flag} {value}`: {value!r} is not one of {list(choices)}"
    # every command slimkit has is shown at least once
    assert shown == set(COMMANDS), f"README does not show: {sorted(set(COMMANDS) - shown)}"


def test_every_relative_link_and_named_repository_file_exists():
    links = re.findall(r"\]\(([^)\s]+)\)", README)
    relative = [link.split("#", 1)[0] for link in links if not re.match(r"[a-z]+:", link)]
    assert relative, "README links to nothing"
    named = re.findall(r"(?<![\w/.-])((?:recipes|docs|scripts|bench)/[a-z0-9_./-]+\.(?:ya?ml|md|sh|py))(?!\w)", README)
    for path in {*relative, *named, "SECURITY.md"}:
        assert (ROOT / path).exists(), f"README names {path}, which does not exist"


def resolve(dotted: str) -> Any:
    """``slimkit.a.b``: the attribute, importing modules on the way; AssertionError if missing."""
    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=2):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                raise AssertionError(f"README names {dotted}, but {'.'.join(parts[:i])} does not exist") from None
    return obj


def test_every_slimkit_name_the_readme_uses_exists():
    names = set(re.findall(r"\bslimkit(?:\.[A-Za-z_]\w*)+", README))
    assert {"slimkit.prune", "slimkit.quantize", "slimkit.distill", "slimkit.recover"} <= names
    for name in names:
        resolve(name)
    # bare class names in prose (`StaticInt8`, `EarlyExit`, `DataLoader`...) are slimkit's or torch's
    homes = [importlib.import_module(m) for m in ("slimkit", "slimkit.dynamic", "torch.nn", "torch.utils.data")]
    spans = re.findall(r"`([^`]+)`", PROSE)
    words = {word for span in spans for word in re.findall(r"\b([A-Z]\w*[a-z]\w*)(?=\(|$)", span)}
    assert {"DynamicInt8", "UnstructuredPruning", "EarlyExit", "ChannelGating"} <= words
    for word in words:
        assert any(hasattr(home, word) for home in homes), f"README names `{word}`, which slimkit does not have"


def _python_calls() -> list[tuple[ast.Call, dict[str, str]]]:
    """The calls in the README's Python blocks with the dotted names they refer to."""
    calls = []
    for body in PYTHON:
        tree = ast.parse(body)
        imported = {"slimkit": "slimkit"}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("slimkit"):
                for alias in node.names:
                    imported[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        calls += [(node, imported) for node in ast.walk(tree) if isinstance(node, ast.Call)]
    # inline code that is a Python call, e.g. `slimkit.dynamic.make_dynamic(model, EarlyExit(...), ...)`
    bare = {name: f"{home}.{name}" for home in ("slimkit.dynamic", "slimkit")
            for name in dir(importlib.import_module(home)) if name[:1].isupper()}
    for span in re.findall(r"`([^`]+)`", PROSE):
        try:
            tree = ast.parse(span.replace("\n", " "), mode="eval")
        except SyntaxError:
            continue
        calls += [(node, {"slimkit": "slimkit", **bare}) for node in ast.walk(tree) if isinstance(node, ast.Call)]
    return calls


def _dotted(node: ast.expr, imported: dict[str, str]) -> str | None:
    if isinstance(node, ast.Name):
        return imported.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, imported)
        return f"{base}.{node.attr}" if base else None
    return None


def test_the_python_examples_call_real_functions_with_real_arguments():
    checked = 0
    for call, imported in _python_calls():
        dotted = _dotted(call.func, imported)
        if dotted is None:
            continue
        target = resolve(dotted)
        keywords = {k.arg: k.value for k in call.keywords if k.arg}
        if inspect.isclass(target) and issubclass(target, Config):
            literal = {k: ast.literal_eval(v) for k, v in keywords.items()}
            target(**literal)  # a field that does not exist, or a bad value, raises
        else:
            inspect.signature(target).bind(*call.args, **keywords)  # argument names and count
        checked += 1
    assert checked >= 20


@pytest.mark.parametrize("body", [b for b in PYTHON if "modelio." in b])
def test_the_model_io_example_runs(body):
    exec(compile(body, "README.md", "exec"), {})  # noqa: S102 (the repository's own README example, run as written)
