import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from slimkit.errors import CheckpointError
from slimkit.export.serialize import (
    CHANGES,
    load_model,
    read_spec,
    record_change,
    save_model,
)
from slimkit.models import MODELS, build_model


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_reloads_with_identical_outputs(tmp_path, name):
    torch.manual_seed(0)
    model = build_model(name, input_size=8, num_classes=3).eval()
    x = torch.randn(4, 1, 8, 8)
    loaded = load_model(save_model(model, tmp_path / name))
    assert torch.equal(loaded(x), model(x))
    assert loaded.slimkit_spec == model.slimkit_spec


def _widen_head(model: nn.Module, change: dict) -> nn.Module:
    model.classifier.out = nn.Linear(model.classifier.out.in_features, change["classes"])
    return model


CHANGES.add("test_widen_head", _widen_head)


def test_history_is_replayed_on_load(tmp_path):
    model = build_model("mlp", hidden=[8], input_size=8, num_classes=3)
    model = _widen_head(model, {"classes": 5})
    record_change(model, "test_widen_head", classes=5)
    loaded = load_model(save_model(model, tmp_path))
    assert loaded.classifier.out.out_features == 5
    assert loaded.slimkit_history == [{"kind": "test_widen_head", "classes": 5}]


def test_fresh_process_reload_matches(tmp_path):
    model = build_model("resnet", depth=8, input_size=8, num_classes=3).eval()
    x = torch.randn(2, 1, 8, 8)
    save_model(model, tmp_path)
    torch.save(x, tmp_path / "x.pt")
    code = (
        "import sys, torch; from slimkit.export import load_model; "
        f"m = load_model({str(tmp_path)!r}); x = torch.load({str(tmp_path / 'x.pt')!r}, weights_only=True); "
        "print(m(x).detach().numpy().tobytes().hex())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == model(x).detach().numpy().tobytes().hex()


def test_unknown_change_kind_is_rejected_when_recorded():
    with pytest.raises(Exception, match="unknown model change 'nonexistent'"):
        record_change(nn.Linear(1, 1), "nonexistent")


def test_missing_folder_and_bad_json(tmp_path):
    with pytest.raises(CheckpointError, match="model.json is missing"):
        load_model(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_spec(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(CheckpointError, match="not a slimkit model spec"):
        read_spec(tmp_path)


def test_newer_format_version_asks_for_upgrade(tmp_path):
    save_model(build_model("mlp", hidden=[4], input_size=8), tmp_path)
    doc = json.loads((tmp_path / "model.json").read_text())
    doc["version"] = 99
    (tmp_path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="newer than this slimkit") as info:
        load_model(tmp_path)
    assert info.value.hint == "upgrade slimkit"


def test_shape_mismatch_names_the_tensor(tmp_path):
    save_model(build_model("mlp", hidden=[4], input_size=8), tmp_path)
    with pytest.raises(CheckpointError, match=r"features\.0\.fc\.weight: saved \(4, 64\) vs model \(6, 64\)"):
        load_model(tmp_path, model=build_model("mlp", hidden=[6], input_size=8))


def test_custom_model_needs_an_instance(tmp_path):
    custom = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    save_model(custom, tmp_path)
    with pytest.raises(CheckpointError, match="not in slimkit's registry"):
        load_model(tmp_path)
    loaded = load_model(tmp_path, model=nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
    assert torch.equal(loaded[1].weight, custom[1].weight)


def test_corrupt_weights_file(tmp_path):
    save_model(build_model("mlp", hidden=[4], input_size=8), tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot read .*model.safetensors"):
        load_model(tmp_path)


def test_fresh_process_replays_a_change_without_importing_its_package(tmp_path):
    from slimkit.transform import fuse

    model = fuse(build_model("cnn", channels=[4, 8], hidden=8, input_size=8, num_classes=3).eval())
    assert [c["kind"] for c in model.slimkit_history] == ["fuse", "report"]
    x = torch.randn(2, 1, 8, 8)
    save_model(model, tmp_path)
    torch.save(x, tmp_path / "x.pt")
    code = (
        "import torch; from slimkit.export import load_model; "  # nothing imports slimkit.transform here
        f"m = load_model({str(tmp_path)!r}); x = torch.load({str(tmp_path / 'x.pt')!r}, weights_only=True); "
        "print(m(x).detach().numpy().tobytes().hex())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == model(x).detach().numpy().tobytes().hex()
