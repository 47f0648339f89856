"""The runner end to end on a tiny recipe: folders, status, metrics, dry run, and exact resume."""

import json

import pytest
import torch
from safetensors.torch import load_file

from slimkit.errors import CheckpointError, ConfigError
from slimkit.recipe import Recipe, run_recipe
from slimkit.recipe.pipeline import Pipeline
from slimkit.train import Callback


def _weights(out, folder):
    return load_file(str(out / folder / "model" / "model.safetensors"))


def _final_metrics(out):
    metrics = json.loads((out / "03-prune" / "metrics.json").read_text())
    history = [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in metrics["history"]]
    return metrics["quality"], metrics["cost"]["params"], history


def test_run_writes_the_documented_layout(tiny, tmp_path):
    out = tmp_path / "run"
    result = run_recipe(Recipe.from_dict(tiny), out, overrides=["teacher.epochs=2"], progress=False, report=False)
    names = sorted(p.name for p in out.iterdir())
    assert names == [".slimkit.lock", "00-source", "01-teacher", "02-distill", "03-prune", "final.json",
                     "original.json", "recipe.resolved.json", "recipe.resolved.yaml", "status.json"]
    assert json.loads((out / "recipe.resolved.json").read_text())["stages"][0]["epochs"] == 2
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "done" and [s["state"] for s in status["stages"]] == ["done"] * 3
    metrics = json.loads((out / "02-distill" / "metrics.json").read_text())
    assert set(metrics["quality"]) >= {"accuracy", "f1", "roc_auc", "ece", "confusion"}
    assert set(metrics["cost"]) >= {"params", "bytes", "macs"} and set(metrics["latency"]) == {"1", "4"}
    assert metrics["cost"]["bytes"] == (out / "02-distill" / "model" / "model.safetensors").stat().st_size
    assert metrics["vs_original"]["params_ratio"] > 1 and len(metrics["history"]) == 2
    assert (out / "02-distill" / "train" / "last.pt").is_file() and "epoch 2:" in (out / "02-distill" / "log.txt").read_text()
    assert result.final["ratios"]["params_ratio"] > 1 and result.final["agreement"]["num_samples"] == 24


def test_an_existing_run_needs_resume_and_the_same_recipe(tiny, tmp_path):
    out = tmp_path / "run"
    tiny["stages"] = tiny["stages"][:1]
    run_recipe(Recipe.from_dict(tiny), out, progress=False, report=False)
    with pytest.raises(ConfigError, match="already holds a run"):
        run_recipe(Recipe.from_dict(tiny), out, progress=False, report=False)
    with pytest.raises(CheckpointError, match="stages.0.epochs changed"):
        run_recipe(Recipe.from_dict(tiny), out, resume=True, overrides=["teacher.epochs=3"], progress=False, report=False)
    # measurement settings may change on resume: they do not change results
    run_recipe(Recipe.from_dict(tiny), out, resume=True, overrides=["evaluation.repeats=2"], progress=False, report=False)


def test_dry_run_validates_prints_and_writes_nothing(tiny, tmp_path, capsys):
    from rich.console import Console

    console = Console(file=None, width=120)
    run_recipe(Recipe.from_dict(tiny), tmp_path / "run", dry_run=True, console=console)
    printed = capsys.readouterr().out
    assert "02-distill" in printed and "train.epochs=2" in printed and "structured.ratio=0.25" in printed
    assert not (tmp_path / "run").exists()


class Crash(Callback):
    """Raises at the given global step of the given fit (counting fits from 1)."""

    def __init__(self, fit: int, step: int) -> None:
        self.fit, self.step, self.fits = fit, step, 0

    def on_fit_start(self, trainer):
        self.fits += 1

    def on_step_end(self, trainer, logs):
        if self.fits == self.fit and trainer.global_step == self.step:
            raise RuntimeError("injected crash")


@pytest.fixture
def uninterrupted(tiny, tmp_path):
    out = tmp_path / "straight"
    run_recipe(Recipe.from_dict(tiny), out, progress=False, report=False)
    return out


def test_resume_after_a_crash_mid_epoch_gives_identical_results(tiny, tmp_path, uninterrupted):
    out = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="injected crash"):  # stage 2, second epoch (6 batches per epoch)
        run_recipe(Recipe.from_dict(tiny), out, callbacks=[Crash(fit=2, step=8)], progress=False, report=False)
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "failed" and status["stages"][1]["state"] == "failed"
    assert "injected crash" in status["stages"][1]["error"]
    assert len((out / "02-distill" / "train" / "metrics.jsonl").read_text().splitlines()) == 1
    run_recipe(Recipe.from_dict(tiny), out, resume=True, progress=False, report=False)
    for folder in ("02-distill", "03-prune"):
        a, b = _weights(uninterrupted, folder), _weights(out, folder)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _final_metrics(out) == _final_metrics(uninterrupted)


def test_resume_after_a_crash_between_saving_and_measuring(tiny, tmp_path, uninterrupted, monkeypatch):
    out = tmp_path / "crashed"
    measure = Pipeline._measure
    calls = []

    def crash_on_second(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # stage 2 is saved, its metrics are not
        return measure(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "_measure", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(Recipe.from_dict(tiny), out, progress=False, report=False)
    assert not (out / "02-distill" / "metrics.json").exists()
    monkeypatch.setattr(Pipeline, "_measure", measure)
    run_recipe(Recipe.from_dict(tiny), out, resume=True, progress=False, report=False)
    assert _final_metrics(out) == _final_metrics(uninterrupted)
    a, b = _weights(uninterrupted, "03-prune"), _weights(out, "03-prune")
    assert all(torch.equal(a[k], b[k]) for k in a)
