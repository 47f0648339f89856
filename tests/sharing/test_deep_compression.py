import copy

import pytest
import torch

from slimkit.data import make_loaders
from slimkit.distillation import RecoveryConfig
from slimkit.errors import ConfigError
from slimkit.models import build_model
from slimkit.sharing import (
    DeepCompressionConfig,
    ShareConfig,
    decode,
    deep_compress,
    effective_state,
)


def test_pipeline_reports_every_stage_and_writes_a_lossless_file(tiny_splits, tmp_path):
    torch.manual_seed(0)
    model = build_model("mlp", hidden=[64, 32], input_size=8, num_classes=3)
    loaders = make_loaders(tiny_splits, batch_size=32)
    config = DeepCompressionConfig(sparsity={"classifier.*": 0.5, "*": 0.9}, share=ShareConfig(bits=3))
    result = deep_compress(model, config, train_loader=loaders.train, eval_loader=loaders.test,
                           out=tmp_path / "m.skc")
    stages = {s["stage"]: s for s in result.stages}
    assert list(stages) == ["fp32", "pruned", "clustered", "huffman"]
    assert stages["fp32"]["bytes"] > stages["pruned"]["bytes"] > stages["clustered"]["bytes"] >= stages["huffman"]["bytes"]
    assert stages["huffman"]["bytes"] == (tmp_path / "m.skc").stat().st_size
    assert stages["pruned"]["nonzero"] < 0.2 * stages["fp32"]["nonzero"]
    assert stages["huffman"]["accuracy"] == stages["clustered"]["accuracy"]  # coding loses nothing
    assert all(0 <= s["accuracy"] <= 1 for s in result.stages)
    weight = result.model.features[0].fc.weight
    assert (weight == 0).float().mean() >= 0.89 and len(torch.unique(weight)) <= 9
    decoded = decode(tmp_path / "m.skc")
    assert all(torch.equal(decoded[k], v) for k, v in effective_state(result.model).items())


def test_bad_sparsity_is_a_config_error():
    with pytest.raises(ConfigError, match="sparsity must be in"):
        DeepCompressionConfig(sparsity={"*": 1.5})


def _zero_share(model, name):
    return float((model.get_submodule(name).weight == 0).float().mean())


def test_gradual_pruning_reaches_each_layers_sparsity_and_picks_weights_after_training(tiny_splits):
    loaders = make_loaders(tiny_splits, batch_size=32)  # 4 optimizer steps per epoch
    torch.manual_seed(0)
    base = build_model("mlp", hidden=[64, 32], input_size=8, num_classes=3)
    sparsity = {"classifier.*": 0.5, "*": 0.9}
    results = {}
    for schedule in ("one_shot", "gradual"):
        config = DeepCompressionConfig(sparsity=sparsity, share=ShareConfig(bits=3), schedule=schedule, ramp=0.5,
                                       ramp_steps=3, prune_recovery=RecoveryConfig(epochs=3, lr=1e-2, schedule="onecycle"),
                                       share_recovery=RecoveryConfig(epochs=0))
        model = copy.deepcopy(base)
        result = deep_compress(model, config, train_loader=loaders.train)
        results[schedule] = result.model
        assert _zero_share(result.model, "features.0.fc") == pytest.approx(0.9, abs=0.01)
        assert _zero_share(result.model, "classifier.out") == pytest.approx(0.5, abs=0.02)
        assert [s["stage"] for s in result.stages] == ["fp32", "pruned", "clustered", "huffman"]
    # One-shot pruning keeps the largest weights of the dense model; the gradual schedule prunes
    # as training goes, so it keeps a different set.
    masks = {k: m.features[0].fc.weight != 0 for k, m in results.items()}
    assert not torch.equal(masks["one_shot"], masks["gradual"])


def test_gradual_schedule_without_a_train_loader_prunes_at_once():
    torch.manual_seed(0)
    model = build_model("mlp", hidden=[32], input_size=8)
    config = DeepCompressionConfig(sparsity={"*": 0.8}, schedule="gradual")
    result = deep_compress(model, config)
    assert _zero_share(result.model, "features.0.fc") == pytest.approx(0.8, abs=0.01)
    assert result.stages[1]["nonzero"] < 0.25 * result.stages[0]["nonzero"]


def test_bad_ramp_is_a_config_error():
    with pytest.raises(ConfigError, match="ramp"):
        DeepCompressionConfig(schedule="gradual", ramp=0)
