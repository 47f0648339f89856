"""Property-based fuzzing of the recipe loader, the ``--set`` parser and the run-folder readers.

Inputs: random YAML-ish text; valid recipes with random edits (values replaced, keys dropped,
types changed) and random anchors and aliases; alias towers of random fan-out and depth;
random ``--set`` strings; and the JSON files of a real run folder (``status.json``,
``metrics.json``, ``original.json``, ``recipe.resolved.json``) with random edits or random bytes.
Every case ends in success or a SlimkitError within one second (see tests/fuzzing.py).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import yaml
from fuzzing import count, fuzz, json_values, mutate_bytes, mutate_json, outcome, run
from hypothesis import given
from hypothesis import strategies as st

from slimkit.errors import CheckpointError, ConfigError
from slimkit.recipe import Recipe, run_recipe
from slimkit.recipe.loader import parse_recipe, validate_recipe
from slimkit.recipe.overrides import apply_overrides
from slimkit.recipe.records import inside, read_final, read_metrics, read_original, read_resolved, read_status
from slimkit.recipe.yamldata import MAX_VALUES

pytestmark = pytest.mark.fuzz

BASE = {
    "name": "fuzz",
    "seed": 0,
    "data": {"name": "synthetic", "batch_size": 16,
             "options": {"num_classes": 3, "shape": [1, 8, 8], "size": 60, "test_size": 20}},
    "model": {"registry": "mlp", "knobs": {"hidden": [4]}},
    "evaluation": {"latency": False, "batch_sizes": [1, 4]},
    "targets": {"size_ratio": 2},
    "stages": [
        {"type": "train", "name": "teacher", "epochs": 1},
        {"type": "distill", "student": {"registry": "mlp", "knobs": {"hidden": [2]}}, "train": {"epochs": 1}},
        {"type": "prune", "structured": {"ratio": 0.5, "seed": 3}, "finetune": {"epochs": 1}},
        {"type": "quantize", "dynamic_int8": {}},
        {"type": "share", "bits": 2},
        {"type": "export", "format": "onnx"},
    ],
}
FIELDS = list(Recipe.model_fields)
_NAMES = itertools.count()


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    """A real finished run; also warms every import the readers and the loader use."""
    root = tmp_path_factory.mktemp("fuzz-run")
    tiny = {**BASE, "stages": [{"type": "train", "epochs": 1}], "targets": {}}
    run_recipe(Recipe.from_dict(tiny), root / "run", progress=False, report=False)
    outcome(parse_recipe, yaml.safe_dump(BASE), source="warm.yaml", overrides=["teacher.epochs=2"])
    return root / "run"


# --- the YAML loader -----------------------------------------------------------------------------

YAML_CHARS = st.sampled_from(list("abcdeknstxyz019:-_.,[]{}&*!#|>'\"?%@` \n\t") + ["\\", "\u00e9", "\x85", "\ufeff"])


@fuzz(1500)
@given(text=st.text(YAML_CHARS, max_size=160))
def recipe_text(text: str) -> None:
    count("recipe_text")
    parsed(text)


def parsed(text: str) -> Recipe | ConfigError:
    """The recipe ``text`` holds, or the ConfigError that says why it holds none."""
    result = outcome(parse_recipe, text, source="fuzz.yaml")
    assert isinstance(result, (Recipe, ConfigError))
    return result


@st.composite
def edited_recipes(draw: st.DrawFn) -> str:
    data = draw(mutate_json(BASE, edits=4)) if draw(st.integers(0, 4)) else BASE
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    if draw(st.booleans()):  # an anchor on one line, aliases of it on others
        lines = text.splitlines()
        at = draw(st.integers(0, len(lines) - 1))
        if ":" in lines[at]:
            key, _, value = lines[at].partition(":")
            lines[at] = f"{key}: &x{value}"
            for _ in range(draw(st.integers(0, 3))):
                other = draw(st.integers(0, len(lines) - 1))
                if ":" in lines[other] and other != at:
                    lines[other] = lines[other].partition(":")[0] + ": *x"
        text = "\n".join(lines) + "\n"
    if draw(st.integers(0, 5)) == 0:
        text = draw(mutate_bytes(text.encode(), header=len(text))).decode("utf-8", "replace")
    return text


@fuzz(500)
@given(text=edited_recipes())
def recipe_documents(text: str) -> None:
    count("recipe_documents")
    parsed(text)


@st.composite
def alias_towers(draw: st.DrawFn) -> str:
    """Anchors built from aliases of the level below, each level its own fan-out and shape:
    the product of the fan-outs once expanded (a "billion laughs" at the far end)."""
    fans = draw(st.lists(st.integers(1, 12), min_size=1, max_size=12))
    leaf = draw(st.sampled_from(["x", "lol", "'a long string of laughter'", "1", "{type: train}", "[[[]]]"]))
    lines = [f"l0: &l0 [{', '.join([leaf] * fans[0])}]"]
    for level, fan in enumerate(fans[1:], 1):
        items = ", ".join([f"*l{level - 1}"] * fan)
        shape = draw(st.sampled_from(["[{}]", "{{a: [{}]}}", "[[{}]]"]))
        lines.append(f"l{level}: &l{level} " + shape.format(items))
    lines.append(f"stages: [*l{len(fans) - 1}]")
    return "\n".join(lines) + "\n"


@fuzz(400)
@given(text=alias_towers())
def recipe_alias_towers(text: str) -> None:
    count("recipe_alias_towers")
    result = parsed(text)
    assert isinstance(result, ConfigError)  # never a recipe; either too big or not valid stages
    if "expands to more than" not in str(result) and "nested more than" not in str(result):
        assert "stage" in str(result)


def test_fuzz_recipe_text(run_folder, record_property):
    run(recipe_text, record_property, 1500)


def test_fuzz_recipe_documents(run_folder, record_property):
    run(recipe_documents, record_property, 500)


def test_fuzz_recipe_alias_towers(run_folder, record_property):
    run(recipe_alias_towers, record_property, 400)
    assert MAX_VALUES == 100_000


# --- --set ---------------------------------------------------------------------------------------

KEYS = ["seed", "name", "data.limit", "data.options.size", "model.knobs.hidden", "model.factory", "teacher.epochs",
        "distill.student.registry", "stages.1.epochs", "stages.3.structured.ratio", "stages.9.epochs", "stages.x",
        "stages", "prune.finetune.lr", "quantize.scheme.type", "evaluation.batch_sizes", "targets", "nosuch.field",
        "", ".", "a..b", "stages.0.epochs", "share.config.bits", "export"]
VALUES = st.sampled_from(["1", "0", "-1", "2**70", "1e400", "null", "[1, 2]", "{a: 1}", "&a [*a]", "!!python/name:os",
                          "[[[[[[", "'", "x" * 50, "mlp", "os:system", "true", "2001-01-01", "", "=", "{a: &a 1, b: *a}"])


@fuzz(1200)
@given(overrides=st.lists(st.tuples(st.sampled_from(KEYS) | st.text(max_size=12),
                                    VALUES | st.text(YAML_CHARS, max_size=30)), max_size=4),
       separator=st.sampled_from(["=", "=", ":", ""]))
def set_overrides(overrides: list[tuple[str, str]], separator: str) -> None:
    count("set_overrides")
    texts = [f"{key}{separator}{value}" for key, value in overrides]
    applied = outcome(apply_overrides, BASE, texts, FIELDS)
    if isinstance(applied, tuple):
        data, origins = applied
        result = outcome(validate_recipe, data, source="fuzz.yaml", origins=origins)
        assert isinstance(result, (Recipe, ConfigError))
    else:
        assert isinstance(applied, ConfigError)


def test_fuzz_set_overrides(run_folder, record_property):
    run(set_overrides, record_property, 1200)


# --- run-folder readers --------------------------------------------------------------------------

READERS = {"status.json": read_status, "01-train/metrics.json": read_metrics, "original.json": read_original,
           "recipe.resolved.json": read_resolved, "final.json": read_final}


@st.composite
def damaged_files(draw: st.DrawFn, run: Path) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(READERS)))
    raw = (run / name).read_bytes()
    how = draw(st.sampled_from(["json", "json", "json", "bytes", "random"]))
    if how == "json":
        return name, json.dumps(draw(mutate_json(json.loads(raw), edits=3))).encode()
    if how == "bytes":
        return name, draw(mutate_bytes(raw, header=len(raw)))
    return name, json.dumps(draw(json_values)).encode()


def read_damaged(run_folder: Path, workdir: Path):
    @fuzz(1300)
    @given(case=damaged_files(run_folder))
    def run_files(case: tuple[str, bytes]) -> None:
        count("run_files")
        name, raw = case
        path = workdir / f"case{next(_NAMES)}-{name.replace('/', '-')}"
        path.write_bytes(raw)
        result = outcome(READERS[name], path)
        assert not isinstance(result, ConfigError) or isinstance(result, CheckpointError) or name.startswith("recipe")
        if name.endswith("metrics.json") and not isinstance(result, CheckpointError):
            if result.artifact is not None:
                outcome(inside, run_folder, result.artifact, "artifact", path)
            outcome(result.data_config, path)
    run_files.__name__ = "run_files"
    return run_files


def test_fuzz_run_folder_readers(run_folder, tmp_path, record_property):
    run(read_damaged(run_folder, tmp_path), record_property, 1300)
