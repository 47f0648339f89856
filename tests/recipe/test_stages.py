"""Every registered stage type runs inside a recipe (after a 1-epoch teacher) and its saved
model reloads; a new stage type is one registration."""

import json
from typing import Literal

import pytest

from slimkit.errors import ConfigError
from slimkit.recipe import (
    STAGES,
    Recipe,
    StageConfig,
    StageResult,
    build_stage,
    run_recipe,
    stage,
)
from slimkit.recipe.models import load_stage_model


@pytest.mark.parametrize("name", STAGES.names())
def test_every_stage_type_is_documented_and_its_example_is_valid(name):
    entry, meta = STAGES.get(name), STAGES.meta(name)
    assert meta["doc"] and entry.config.__doc__
    assert entry.config.model_fields["type"].default == name
    config = build_stage({"type": name, **meta["example"]})
    assert config.label == name and config.to_dict()["type"] == name


@pytest.mark.parametrize("name", STAGES.names())
def test_every_stage_type_runs_in_a_recipe(name, tiny, tmp_path):
    tiny["stages"] = [tiny["stages"][0], {"type": name, **STAGES.meta(name)["example"]}]
    out = tmp_path / "run"
    run_recipe(Recipe.from_dict(tiny), out, progress=False, report=False)
    metrics = json.loads((out / f"02-{name}" / "metrics.json").read_text())
    assert metrics["type"] == name and 0.0 <= metrics["quality"]["accuracy"] <= 1.0
    assert metrics["cost"]["bytes"] > 0 and metrics["latency"]["1"]["median_ms"] > 0
    model = load_stage_model(out / f"02-{name}")  # every stage's output reloads from its files alone
    assert sum(1 for _ in model.parameters()) or hasattr(model, "onnx_model")


def test_transfer_moves_to_new_data_with_a_new_head(tiny, tmp_path):
    import torch

    tiny["stages"] = [tiny["stages"][0], {"type": "transfer", "data": {"name": "digits", "limit": 60},
                                          "freeze": ["features.*"], "epochs": 1}]
    out = tmp_path / "run"
    result = run_recipe(Recipe.from_dict(tiny), out, progress=False, report=False)
    metrics = json.loads((out / "02-transfer" / "metrics.json").read_text())
    assert metrics["data"]["config"]["name"] == "digits" and "features.1.conv" in metrics["info"]["frozen"]
    assert "accuracy_delta" not in metrics["vs_original"] and metrics["vs_original"]["size_ratio"] > 0
    model = load_stage_model(out / "02-transfer")
    assert model.classifier.out.out_features == 10 and model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert result.final["same_data"] is False and "agreement" not in result.final
    teacher = load_stage_model(out / "01-teacher")
    assert torch.equal(model.features[0].conv.weight, teacher.features[0].conv.weight)  # frozen


class NoopStage(StageConfig):
    """A stage that changes nothing (a stand-in for a future stage type)."""

    type: Literal["noop"] = "noop"
    note: str = ""


def test_a_new_stage_type_is_one_registration(tiny, tmp_path):
    @stage("noop", NoopStage, doc="does nothing", example={"note": "hi"})
    def run_noop(ctx, config):
        ctx.log(f"noop says {config.note}")
        return StageResult(ctx.model, info={"note": config.note})

    try:
        tiny["stages"] = [tiny["stages"][0], {"type": "noop", "note": "hello"}]
        run_recipe(Recipe.from_dict(tiny), tmp_path / "run", progress=False, report=False)
        assert "noop says hello" in (tmp_path / "run" / "02-noop" / "log.txt").read_text()
    finally:
        STAGES._items.pop("noop"), STAGES._meta.pop("noop")
    with pytest.raises(ConfigError, match="defaults to 'noop', not 'other'"):
        stage("other", NoopStage, doc="x")


def test_prune_stage_chooses_ratios_for_macs_and_latency(tiny, tmp_path):
    tiny["stages"] = [tiny["stages"][0], {"type": "prune", "sensitivity": True, "sensitivity_latency": 0.95,
                                          "structured": {"target_macs": 0.7, "latency_batch_size": 4},
                                          "finetune": {"epochs": 0}}]
    run_recipe(Recipe.from_dict(tiny), tmp_path / "run", progress=False, report=False)
    info = json.loads((tmp_path / "run" / "02-prune" / "metrics.json").read_text())["info"]
    assert info["config"]["ratios"] and set(info["sensitivity"]["latency"]) == set(info["sensitivity"]["accuracy"])
    macs = info["record"]["macs"]
    assert macs[1] <= 0.7 * macs[0]
    with pytest.raises(ConfigError, match="sensitivity_latency needs sensitivity: true"):
        build_stage({"type": "prune", "structured": {"target_macs": 0.5}, "sensitivity_latency": 0.5})


def test_quantize_stage_times_runtimes_at_the_recipes_evaluation_settings():
    from slimkit.quantization import DynamicInt8, StaticInt8
    from slimkit.recipe.fields import EvaluationConfig
    from slimkit.recipe.stages.quantize import timed_as_evaluated

    evaluation = EvaluationConfig(batch_sizes=(1, 32), threads=1)
    chosen = timed_as_evaluated(StaticInt8(), evaluation)
    assert chosen.batch_sizes == [1, 32] and chosen.threads == 1
    own = timed_as_evaluated(StaticInt8(batch_sizes=[8]), evaluation)  # the scheme's own settings win
    assert own.batch_sizes == [8] and own.threads == 1
    fixed = StaticInt8(backend="onnxruntime")  # nothing is timed: unchanged
    assert timed_as_evaluated(fixed, evaluation) is fixed
    assert timed_as_evaluated(DynamicInt8(), evaluation) == DynamicInt8()
    unset = timed_as_evaluated(StaticInt8(), EvaluationConfig(batch_sizes=(1, 256)))
    assert unset.threads is None  # no evaluation threads: the selection's own default
