import pytest
import torch

from slimkit.data import make_loaders
from slimkit.errors import ConfigError
from slimkit.models import build_model
from slimkit.share import (
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
