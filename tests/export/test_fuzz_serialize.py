"""Property-based fuzzing of the saved-model loader: ``model.json`` (read_spec, the spec build,
the history replay) and ``model.safetensors`` (random and mutated bytes).

The bases are real saved models (an MLP, and one with k-means weight sharing in its history);
each case edits one file and loads the folder. Every case ends in a loaded model or a
SlimkitError within one second (see tests/fuzzing.py).
"""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest
import torch
from fuzzing import count, fuzz, json_values, mutate_bytes, mutate_json, outcome, run
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from slimkit.errors import SlimkitError
from slimkit.export.serialize import load_model, read_spec, save_model
from slimkit.models import build_model
from slimkit.sharing import ShareConfig, share

pytestmark = pytest.mark.fuzz
_NAMES = itertools.count()


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    """Saved models to edit; each is loaded once so first-call imports do not count against a case."""
    root = tmp_path_factory.mktemp("fuzz-models")
    torch.manual_seed(0)
    plain = save_model(build_model("mlp", hidden=[8], input_size=4, num_classes=3), root / "plain")
    shared = save_model(share(build_model("mlp", hidden=[6], input_size=4, num_classes=3), ShareConfig(bits=2)),
                        root / "shared")
    for folder in (plain, shared):
        load_model(folder)
    return {"plain": plain, "shared": shared}


def copy_of(base: Path, workdir: Path) -> Path:
    folder = workdir / f"case{next(_NAMES)}"
    shutil.copytree(base, folder)
    return folder


def check(result: object) -> None:
    assert isinstance(result, (nn.Module, SlimkitError))
    if isinstance(result, nn.Module):
        assert sum(p.numel() for p in result.parameters()) < 10_000  # nothing grew from the edits


def fuzz_model_json(bases: dict[str, Path], workdir: Path):
    @fuzz(800)
    @given(name=st.sampled_from(sorted(bases)), how=st.sampled_from(["json", "json", "json", "bytes", "random"]),
           data=st.data())
    def model_json(name: str, how: str, data: st.DataObject) -> None:
        count("model_json")
        folder = copy_of(bases[name], workdir)
        raw = (folder / "model.json").read_bytes()
        if how == "json":
            raw = json.dumps(data.draw(mutate_json(json.loads(raw), edits=3))).encode()
        elif how == "bytes":
            raw = data.draw(mutate_bytes(raw, header=len(raw)))
        else:
            raw = json.dumps(data.draw(json_values)).encode()
        (folder / "model.json").write_bytes(raw)
        spec = outcome(read_spec, folder)
        loaded = outcome(load_model, folder)
        check(loaded)
        assert not isinstance(spec, SlimkitError) or isinstance(loaded, SlimkitError)

    return model_json


def fuzz_weights(bases: dict[str, Path], workdir: Path):
    @fuzz(600)
    @given(name=st.sampled_from(sorted(bases)), random=st.integers(0, 9), data=st.data())
    def weights_file(name: str, random: int, data: st.DataObject) -> None:
        count("weights_file")
        folder = copy_of(bases[name], workdir)
        raw = (folder / "model.safetensors").read_bytes()
        header = 8 + int.from_bytes(raw[:8], "little")
        if random == 0:
            raw = data.draw(st.binary(max_size=200))
        else:
            raw = data.draw(mutate_bytes(raw, header=header))
        (folder / "model.safetensors").write_bytes(raw)
        check(outcome(load_model, folder))

    return weights_file


def test_fuzz_model_json(bases, tmp_path, record_property):
    run(fuzz_model_json(bases, tmp_path), record_property, 800)


def test_fuzz_weights_file(bases, tmp_path, record_property):
    run(fuzz_weights(bases, tmp_path), record_property, 600)
