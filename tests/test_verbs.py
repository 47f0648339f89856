"""Every verb, with every config type it accepts: one contract.

``verb(model, config, loader, ...)`` returns the model (quantize returns the quantized model and
leaves its input alone), records what it did in the model's history, and refuses a config of
the wrong type with a ConfigError naming the types it takes. A new config type registered with
a verb must get an example here, or the coverage test fails.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

import slimkit
from slimkit.errors import ConfigError
from slimkit.models import build_model
from slimkit.registry import VERBS
from slimkit.train import TrainConfig

VERB_NAMES = ("prune", "quantize", "factorize", "share", "fuse", "lighten", "distill")
QUICK = TrainConfig(epochs=1, progress=False)

#: One small valid config per config type, by type name.
EXAMPLES = {
    "StructuredPruning": lambda: slimkit.StructuredPruning(ratio=0.25),
    "UnstructuredPruning": lambda: slimkit.UnstructuredPruning(amount=0.5),
    "StaticInt8": lambda: slimkit.StaticInt8(calibration_batches=1),
    "DynamicInt8": lambda: slimkit.DynamicInt8(),
    "QAT": lambda: slimkit.QAT(calibration_batches=1),
    "LowBit": lambda: slimkit.LowBit(bits=4, calibration_batches=1),
    "MixedPrecision": lambda: slimkit.MixedPrecision(target_size=0.5, calibration_batches=1),
    "SVD": lambda: slimkit.SVD(rank=2, include=["classifier.*"]),
    "Tucker": lambda: slimkit.Tucker(ranks=[2, 2]),
    "CP": lambda: slimkit.CP(rank=2),
    "ShareConfig": lambda: slimkit.ShareConfig(bits=3),
    "DeepCompressionConfig": lambda: slimkit.DeepCompressionConfig(sparsity={"classifier.*": 0.5},
                                                                   share=slimkit.ShareConfig(bits=2)),
    "FuseConfig": lambda: slimkit.FuseConfig(),
    "LightenConfig": lambda: slimkit.LightenConfig(),
    "DistillConfig": lambda: slimkit.DistillConfig(train=QUICK),
    "AttentionPruning": lambda: slimkit.AttentionPruning(heads=0.5, ffn=0.25),
    "EmbeddingInt8": lambda: slimkit.EmbeddingInt8(),
    "TAKD": lambda: slimkit.distillation.TAKD(assistants=[{"width": 0.5}], train=QUICK),
}
#: Config types for a transformer over token IDs (attention heads, embedding tables), not a CNN.
ON_TOKENS = {"AttentionPruning", "EmbeddingInt8"}


def _cases() -> list[tuple[str, str]]:
    for name in VERB_NAMES:
        getattr(slimkit, name)  # importing the verb registers its dispatcher and implementations
    return [(verb, t.__name__) for verb in VERB_NAMES for t in VERBS[verb].types()]


def test_every_config_type_has_an_example():
    assert {t for _, t in _cases()} == set(EXAMPLES)


@pytest.mark.parametrize(("verb", "kind"), _cases())
def test_verb_returns_the_model_and_records_what_it_did(verb, kind, tiny_splits):
    torch.manual_seed(0)
    loader = DataLoader(tiny_splits.train, batch_size=32)
    model = build_model("cnn", channels=[4, 8], hidden=8, input_size=8, num_classes=3).eval()
    if kind in ON_TOKENS:
        import zoo

        loader = DataLoader(zoo.adapt("transformer", tiny_splits.train), batch_size=32)
        model = zoo.build("transformer", input_size=8, num_classes=3, dim=16, heads=2, depth=1).eval()
    before = copy.deepcopy(model).requires_grad_(False)
    kwargs = {"teacher": before} if verb == "distill" else {}
    out = getattr(slimkit, verb)(model, EXAMPLES[kind](), loader, **kwargs)
    assert isinstance(out, nn.Module)
    history = getattr(out, "slimkit_history", [])
    assert history and all("kind" in entry for entry in history)
    if verb == "quantize":
        assert slimkit.report_of(out, "quantize")["quantized_layers"]
        assert not getattr(model, "slimkit_history", [])  # the input model is left alone
    else:
        assert out is model
    x = next(iter(loader))[0][:2]
    with torch.no_grad():
        assert out(x).shape == before(x).shape


@pytest.mark.parametrize("verb", VERB_NAMES)
def test_a_config_of_another_verb_is_refused_by_name(verb):
    wrong = slimkit.RecoveryConfig()
    with pytest.raises(ConfigError, match=rf"{verb}\(\) takes a config object"):
        getattr(slimkit, verb)(nn.Linear(2, 2), wrong, [], **({"teacher": nn.Linear(2, 2)} if verb == "distill" else {}))
