"""A saved model folder is data (issue 15): malformed, hostile or mistyped files are one
CheckpointError naming the file and the field or history entry, checked before anything large
is allocated; saved tensors of another dtype are refused, never silently cast."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from slimkit.cli import main
from slimkit.errors import CheckpointError
from slimkit.export.serialize import MAX_MODEL_VALUES, MAX_MODULES, load_model, read_spec, save_model
from slimkit.models import build_model
from slimkit.sharing import ShareConfig, share


@pytest.fixture
def saved(tmp_path) -> Path:
    torch.manual_seed(0)
    return save_model(build_model("mlp", hidden=[8], input_size=8, num_classes=3), tmp_path / "model")


def rewrite(folder: Path, change) -> Path:
    path = folder / "model.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    return folder


def refused(folder: Path, *needles: str) -> str:
    started = time.process_time()  # CPU time: the machine may be busy with other work
    with pytest.raises(CheckpointError) as caught:
        load_model(folder)
    assert time.process_time() - started < 1.0
    message = str(caught.value).split("\n  hint:")[0]
    assert "\n" not in message and str(folder / "model.json") in message or "model.safetensors" in message, message
    for needle in needles:
        assert needle in message, (needle, message)
    return message


@pytest.mark.parametrize(("raw", "needle"), [
    (b"[1, 2]", "expected a JSON object, got list"),
    (b'{"format": "slimkit-model", "spec": "mlp"}', "field 'spec': expected an object, got str"),
    (b'{"format": "slimkit-model", "version": "1", "spec": {}}', "field 'version'"),
    (b'{"format": "slimkit-model", "spec": {"name": 3}}', "field 'spec.name'"),
    (b'{"format": "slimkit-model", "spec": {"name": "mlp", "kwargs": [1]}}', "field 'spec.kwargs'"),
    (b'{"format": "slimkit-model", "spec": {}, "history": {"kind": "x"}}', "field 'history'"),
    (b'{"format": "slimkit-model", "spec": {}, "history": [["share"]]}', "field 'history.0'"),
    (b'{"format": "slimkit-model", "spec": {}, "history": [{"kind": 5}]}', "field 'history.0'"),
    (b'{"format": "slimkit-model", "spec": {}, "metadata": [1]}', "field 'metadata'"),
    (b'{"format": "slimkit-model", "spec": {}, "inputs": 7}', "field 'inputs'"),
    (b'{"format": "slimkit-model", "spec": {"name": "caf\xe9"}}', "not UTF-8 text"),
    (b'{"format": "slimkit-model", "spec": ' + b"[" * 3000 + b"]" * 3000 + b"}", "nested more than 64 levels"),
    (b'{"format": "slimkit-model", "spec": {', "not valid JSON"),
])
def test_a_malformed_model_json_names_the_file_and_field(saved, raw, needle):
    (saved / "model.json").write_bytes(raw)
    with pytest.raises(CheckpointError, match="model.json") as caught:
        read_spec(saved)
    assert needle in str(caught.value)
    with pytest.raises(CheckpointError):
        load_model(saved)


def test_spec_problems_name_the_field(saved):
    rewrite(saved, lambda d: d["spec"].update(name="mlq"))
    refused(saved, "field 'spec.name'", "Did you mean 'mlp'?")
    rewrite(saved, lambda d: d["spec"].update(name="mlp", kwargs={"hidden": "wide"}))
    refused(saved, "field 'spec.kwargs'")
    rewrite(saved, lambda d: d["spec"].update(kwargs={"hiden": [8]}))
    refused(saved, "field 'spec.kwargs'", "no knob 'hiden'")


def test_absurd_sizes_are_refused_before_anything_is_allocated(saved):
    rewrite(saved, lambda d: d["spec"]["kwargs"].update(hidden=[1_000_000, 1_000_000]))
    refused(saved, "field 'spec.kwargs'", f"more than slimkit builds from a file ({MAX_MODEL_VALUES:,})")
    rewrite(saved, lambda d: d["spec"]["kwargs"].update(hidden=[1e6, 1e6]))  # floats: not sizes at all
    refused(saved, "field 'spec.kwargs'")
    rewrite(saved, lambda d: d["spec"]["kwargs"].update(hidden=[8]))
    terabytes = {"kind": "tensor", "tensors": [{"name": "input", "shape": [1, 100_000, 100_000, 1000],
                                                "dtype": "float32"}]}
    rewrite(saved, lambda d: d.update(inputs=terabytes))
    refused(saved, "field 'inputs'", "larger than slimkit allows")


def test_a_model_of_a_billion_layers_is_stopped_at_the_module_budget(tmp_path, saved, monkeypatch):
    from slimkit.export import serialize

    assert MAX_MODULES == 10_000  # about a second of building on the meta device; 300 here keeps the test quick
    monkeypatch.setattr(serialize, "MAX_MODULES", 300)
    folder = save_model(build_model("cnn", channels=[4], hidden=4, input_size=8), tmp_path / "cnn")
    rewrite(folder, lambda d: d["spec"]["kwargs"].update(convs_per_stage=10**9))
    refused(folder, "field 'spec.kwargs'", "more than 300 layers")
    rewrite(saved, lambda d: d["spec"]["kwargs"].update(hidden=[4] * 301))
    refused(saved, "field 'spec.kwargs'", "more than 300 layers")
    rewrite(saved, lambda d: d["spec"]["kwargs"].update(hidden=[4] * 90))  # within: built, then the weights differ
    refused(saved, "does not fit the model", "missing [")


@pytest.fixture
def shared(tmp_path) -> Path:
    torch.manual_seed(0)
    model = share(build_model("mlp", hidden=[8], input_size=8, num_classes=3), ShareConfig(bits=2))
    return save_model(model, tmp_path / "shared")


def _share_entry(doc: dict) -> dict:
    return next(entry for entry in doc["history"] if entry["kind"] == "share")


@pytest.mark.parametrize(("change", "needle"), [
    ({"k": 10**11}, "k=100000000000"),
    ({"k": 0}, "k=0"),
    ({"k": "4"}, "k=4"),
    ({"k": 1e3}, "k=1000.0"),
    ({"sparse": "yes"}, "sparse=yes"),
    ({"layer": ["features"]}, "needs a 'layer'"),
    ({"layer": "features.99"}, "has no layer 'features.99'"),
    ({"tensor": "forward"}, "not a weight of the model"),
])
def test_a_weight_sharing_record_is_checked_before_its_codebook_is_made(shared, change, needle):
    loaded = load_model(shared)  # the untouched record loads
    assert loaded.slimkit_history
    rewrite(shared, lambda d: _share_entry(d).update(change))
    message = refused(shared, "history entry", "('share')")
    assert needle in message


def test_history_entries_that_cannot_be_replayed_name_the_entry(saved):
    rewrite(saved, lambda d: d.update(history=[{"kind": "report", "verb": "x", "report": {}}, {"kind": "teleport"}]))
    refused(saved, "history entry 1 ('teleport'): no such kind of change", "share")
    rewrite(saved, lambda d: d.update(history=[{"kind": "factorize", "method": "svd"}]))
    refused(saved, "history entry 0 ('factorize')", "cannot be replayed (KeyError: missing field 'layer')")
    rewrite(saved, lambda d: d.update(history=[{"kind": "new_head", "layer": "classifier.out", "num_classes": "x"}]))
    refused(saved, "history entry 0 ('new_head')", "ValueError")


def test_int8_weights_are_never_cast_into_a_float_model(saved):
    tensors = load_file(str(saved / "model.safetensors"))
    name = next(k for k, v in tensors.items() if v.is_floating_point() and v.dim() == 2)
    tensors[name] = tensors[name].mul(100).round().clamp(-128, 127).to(torch.int8)
    save_file(tensors, str(saved / "model.safetensors"), metadata={"format": "slimkit-model"})
    message = refused(saved, f"{name}: saved int8 vs model float32")
    assert "does not fit the model" in message


def test_the_cli_reports_a_hostile_model_folder_in_one_line(saved, capsys):
    rewrite(saved, lambda d: d["spec"]["kwargs"].update(hidden=[1_000_000, 1_000_000]))
    assert main(["evaluate", str(saved), "--dataset", "digits", "--limit", "20"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error: ") and "field 'spec.kwargs'" in err
    assert len([line for line in err.splitlines() if line.strip()]) <= 2
