"""Weight sharing and Deep Compression on architectures slimkit has never seen (tests/zoo.py)."""

import copy

import pytest
import torch
import zoo
from torch import nn
from transform import zoo_cases

from slimkit.distillation import RecoveryConfig
from slimkit.errors import SlimkitError
from slimkit.evaluate import artifact_bytes
from slimkit.export import report_of
from slimkit.sharing import DeepCompressionConfig, ShareConfig, encode, load_encoded, share, shared_layers


@pytest.mark.parametrize("name", zoo.ZOO)
def test_every_weight_layer_is_shared_and_the_file_shrinks(name, tiny_splits, tmp_path):
    x = zoo_cases.inputs(zoo_cases.loader(name, tiny_splits))
    model = zoo_cases.build(name)
    out = share(model, ShareConfig(bits=3))
    report = report_of(out, "share")
    weights = {n: m for n, m in out.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.Embedding))}
    assert {row["layer"] for row in report["layers"]} >= set(weights) and not report["skipped"]
    for key in shared_layers(out):
        assert len(torch.unique(_tensor(out, key))) <= 8, key
    assert zoo_cases.outputs(out, x).isfinite().all()
    size = encode(out, tmp_path / "model.skc")
    assert size < artifact_bytes(zoo_cases.build(name)) / 4  # 3-bit codes instead of 32-bit floats
    decoded = load_encoded(tmp_path / "model.skc", zoo_cases.build(name, seed=1))
    assert zoo_cases.outputs(decoded, x).equal(zoo_cases.outputs(out, x))


def _tensor(model, key):
    module, _, tensor = key.rpartition(".")
    return getattr(model.get_submodule(module), tensor)


def test_embeddings_and_attention_projections_are_shared(tiny_splits):
    out = share(zoo_cases.build("transformer"), ShareConfig(bits=2))
    keys = set(shared_layers(out))
    assert {"embed.weight", "encoder.layers.0.self_attn.in_proj_weight",
            "encoder.layers.0.self_attn.out_proj.weight", "encoder.layers.1.linear2.weight"} <= keys
    assert len(torch.unique(out.embed.weight)) <= 4


def test_shared_foreign_models_reload_identically_in_a_fresh_process(tiny_splits, tmp_path):
    cases = {}
    for name in zoo.ZOO:
        model = share(zoo_cases.build(name), ShareConfig(bits=3))
        cases[name] = (name, model, zoo_cases.inputs(zoo_cases.loader(name, tiny_splits)))
    zoo_cases.assert_reloads(cases, tmp_path)


@pytest.mark.parametrize("name", zoo.ZOO)
def test_deep_compression_works_or_refuses_and_leaves_the_model_alone(name, tiny_splits, tmp_path):
    batches = zoo_cases.loader(name, tiny_splits, batch_size=32)
    x = zoo_cases.inputs(batches)
    model = zoo_cases.build(name)
    snapshot = copy.deepcopy(model)
    quick = RecoveryConfig(epochs=1, lr=1e-3)
    config = DeepCompressionConfig(sparsity={"*": 0.5}, share=ShareConfig(bits=3), prune_recovery=quick,
                                   share_recovery=quick)
    try:
        out = share(model, config, batches, out=tmp_path / "model.skc")
    except SlimkitError as error:  # a clean refusal must leave the model exactly as it was
        assert str(error) and str(model) == str(snapshot)
        assert zoo_cases.outputs(model, x).equal(zoo_cases.outputs(snapshot, x))
        return
    stages = report_of(out, "deep_compression")["stages"]
    assert [s["stage"] for s in stages] == ["fp32", "pruned", "clustered", "huffman"]
    assert stages[-1]["bytes"] < stages[0]["bytes"] / 5 and stages[1]["nonzero"] < stages[0]["nonzero"]
    decoded = load_encoded(tmp_path / "model.skc", zoo_cases.build(name, seed=1))
    assert zoo_cases.outputs(decoded, x).equal(zoo_cases.outputs(out, x))  # the coding is lossless
