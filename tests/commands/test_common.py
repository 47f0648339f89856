"""commands/_common.py: how a technique command (prune, quantize, ...) finds the model of a run folder."""

from __future__ import annotations

import argparse

import torch
from torch import nn

from slimkit.commands._common import run_source
from slimkit.export import save_model
from slimkit.recipe.runfolder import load_run_model


def test_trust_code_rebuilds_a_custom_model_with_the_knobs_its_folder_records(tmp_path):
    # a folder as `slimkit train --model torch.nn:Linear:in_features=4,out_features=6` leaves it
    knobs = {"in_features": 4, "out_features": 6}
    saved = nn.Linear(**knobs)
    folder = save_model(saved, tmp_path / "model", metadata={"source": {"factory": "torch.nn:Linear", "knobs": knobs}})
    source, trust = run_source(argparse.Namespace(model=None, trust_code=True), str(folder))
    assert source == {"run": str(folder), "factory": "torch.nn:Linear", "knobs": knobs}
    # the factory with its default knobs would not build this architecture; with the recorded ones it does
    loaded = load_run_model(source["run"], trust=trust, factory=source["factory"], knobs=source["knobs"])
    assert torch.equal(loaded.weight, saved.weight)
    # without --trust-code the folder's factory is not even named
    assert run_source(argparse.Namespace(model=None, trust_code=False), str(folder))[0] == {"run": str(folder)}
