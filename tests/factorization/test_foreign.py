"""SVD, Tucker and CP on architectures slimkit has never seen (tests/zoo.py): each either makes
the model smaller, or leaves it unchanged and says why with a FactorizationWarning."""

import warnings

import pytest
import zoo
from torch import nn
from transform import zoo_cases

from slimkit.evaluate import count_macs, count_params
from slimkit.export import report_of
from slimkit.factorization import CP, SVD, FactorizationWarning, Tucker, factorize
from slimkit.modelio import take

CONFIGS = {"svd": SVD(target_params=0.6), "tucker": Tucker(target_macs=0.5), "cp": CP(target_macs=0.5, iterations=5)}
#: Where a method finds nothing to factorize: the Mixer's one conv is its 1-channel patch
#: embedding; the transformer's Linears all sit where torch reads their weights directly.
NOTHING = {("mixer", "tucker"), ("mixer", "cp"), ("transformer", "svd"), ("transformer", "tucker"), ("transformer", "cp")}


@pytest.mark.parametrize("method", CONFIGS)
@pytest.mark.parametrize("name", zoo.ZOO)
def test_factorizes_or_says_why(name, method, tiny_splits):
    batches = zoo_cases.loader(name, tiny_splits)
    x = zoo_cases.inputs(batches)
    model = zoo_cases.build(name)
    before, params, macs = zoo_cases.outputs(model, x), count_params(model), count_macs(model, take(x, 1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = factorize(model, CONFIGS[method], batches)  # inputs from the loader, in their own dtypes
    warned = [str(w.message) for w in caught if issubclass(w.category, FactorizationWarning)]
    report = report_of(out, "factorize")
    assert report["heads"] == ["head"] and isinstance(out.head, nn.Linear)  # the head, found by tracing
    assert all(s["layer"] and s["reason"] for s in report["skipped"])
    assert bool(report["layers"]) == ((name, method) not in NOTHING)
    if report["layers"]:
        assert report["met"] and not warned
        assert count_params(out) < params and count_macs(out, take(x, 1)) < macs
        assert zoo_cases.outputs(out, x).shape == before.shape
    else:
        assert len(warned) == 1 and "kept 1.00 of the" in warned[0] and report["met"] is False
        assert zoo_cases.outputs(out, x).equal(before)


def test_attention_layers_are_left_alone_with_the_reason(tiny_splits):
    batches = zoo_cases.loader("transformer", tiny_splits)
    with pytest.warns(FactorizationWarning):
        out = factorize(zoo_cases.build("transformer"), SVD(rank=8), batches)
    reasons = {s["layer"]: s["reason"] for s in report_of(out, "factorize")["skipped"]}
    assert reasons["encoder.layers.0.self_attn.out_proj"].startswith("nn.MultiheadAttention reads out_proj")
    assert "fast path" in reasons["encoder.layers.1.linear2"]


def test_factorized_foreign_models_reload_identically_in_a_fresh_process(tiny_splits, tmp_path):
    cases = {}
    for (name, method), config in {("branchy", "cp"): CP(rank=8, iterations=3), ("se", "tucker"): Tucker(ranks=(8, 8)),
                                   ("resnet_proj", "svd"): SVD(rank=8), ("mixer", "svd"): SVD(rank=8, include=["blocks.*.channel_mix.*"]),
                                   ("dict_io", "tucker"): Tucker(ranks=(8, 8)),
                                   ("two_inputs", "svd"): SVD(rank=8)}.items():
        batches = zoo_cases.loader(name, tiny_splits)
        model = factorize(zoo_cases.build(name), config, batches)
        assert report_of(model, "factorize")["layers"], name
        cases[f"{name}-{method}"] = (name, model, zoo_cases.inputs(batches))
    zoo_cases.assert_reloads(cases, tmp_path)
