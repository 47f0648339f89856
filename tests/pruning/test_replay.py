"""A pruned model saved by slimkit reloads in a fresh process with identical outputs."""

import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import save_file

from slimkit.errors import CheckpointError
from slimkit.export import load_model, save_model
from slimkit.models import build_model
from slimkit.pruning import StructuredPruning, UnstructuredPruning, make_permanent, prune

CHECK = """
import sys, torch
from safetensors.torch import load_file
import slimkit.pruning  # the pruning replayers (see the report: load_model should import them itself)
from slimkit.export import load_model
io = load_file(sys.argv[2])
out = load_model(sys.argv[1])(io["x"])
print("identical" if torch.equal(out, io["y"]) else f"differs by {(out - io['y']).abs().max()}")
"""


def test_pruned_model_reloads_in_a_fresh_process(example, tmp_path):
    # Every model's in-process round trip is in test_structured; one fresh process proves that
    # nothing but the saved files (no pickled code, no in-memory state) is needed.
    model = build_model("resnet", input_size=8)
    prune(model, StructuredPruning(ratio=0.3, round_to=2))
    prune(model, StructuredPruning(target_macs=0.7, allocation="global"))  # a second change to replay
    prune(model, UnstructuredPruning(amount=0.5))
    make_permanent(model)
    save_model(model, tmp_path / "model")
    save_file({"x": example, "y": model.eval()(example).detach()}, str(tmp_path / "io.safetensors"))
    src = str(Path(__file__).resolve().parents[2] / "src")
    done = subprocess.run([sys.executable, "-c", CHECK, str(tmp_path / "model"), str(tmp_path / "io.safetensors")],
                          capture_output=True, text=True, check=False, env={"PYTHONPATH": src, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert done.stdout.strip() == "identical", done.stderr[-2000:]


def test_a_tampered_record_is_a_clear_error(tmp_path):
    import json

    model = build_model("mlp", hidden=[8], input_size=8)
    prune(model, StructuredPruning(ratio=0.5))
    save_model(model, tmp_path)
    spec = json.loads((tmp_path / "model.json").read_text())
    del next(c for c in spec["history"] if c["kind"] == "prune_channels")["removed"]
    (tmp_path / "model.json").write_text(json.dumps(spec))
    with pytest.raises(CheckpointError, match="prune_channels record lacks 'removed'"):
        load_model(tmp_path)


