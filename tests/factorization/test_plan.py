"""Planning (which layers, which ranks, why not) and the warnings ``factorize`` gives."""

import copy
import warnings

import pytest
import torch
from torch import nn

from slimkit.errors import ConfigError, ModelError
from slimkit.export import report_of
from slimkit.factorization import CP, SVD, FactorizationWarning, Tucker, factorize, plan_factorization, svd
from slimkit.models import build_model

X = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def classifier_128x4():
    """The model of the report: an MLP whose 128x4 logits layer SVD once cut to rank 1."""
    torch.manual_seed(0)
    return build_model("mlp", hidden=[128], input_size=8, num_classes=4).eval()


def quiet_factorize(model, config, *args, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = factorize(model, config, *args, **kw)
    return out, [w for w in caught if issubclass(w.category, FactorizationWarning)]


def test_the_head_is_found_by_tracing_and_left_alone_by_default():
    class Named(nn.Module):  # names that say nothing: the head is found from the logits
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(64, 32), nn.Linear(32, 16)

        def forward(self, x):
            return torch.relu(self.b(torch.relu(self.a(x.flatten(1))))) * 2.0

    out, _ = quiet_factorize(Named(), SVD(rank=8), example_inputs=X)
    report = report_of(out, "factorize")
    assert report["heads"] == ["b"] and isinstance(out.b, nn.Linear) and type(out.a).__name__ == "LowRankLinear"
    assert {"layer": "b", "reason": "classifier head (its output is the model's logits): set include_head=True "
            "to factorize it"} in report["skipped"]


def test_svd_at_0_6_params_leaves_a_128x4_head_and_keeps_ranks_above_the_floor():
    out, caught = quiet_factorize(classifier_128x4(), SVD(target_params=0.6))
    report = report_of(out, "factorize")
    assert isinstance(out.classifier.out, nn.Linear) and report["heads"] == ["classifier.out"]
    assert all(r >= 8 for layer in report["layers"] for r in layer["ranks"])
    assert report["met"] and report["achieved"]["params"] <= 0.6 + 0.006 and not caught
    # opting in: a 4-wide head is never cut below its full rank 4, where a factorization is no smaller
    out, _ = quiet_factorize(classifier_128x4(), SVD(target_params=0.6, include_head=True))
    assert isinstance(out.classifier.out, nn.Linear)
    assert any(s["layer"] == "classifier.out" and "at least [4]" in s["reason"] for s in report_of(out, "factorize")["skipped"])


def test_an_explicit_rank_below_the_floor_is_applied_with_a_warning():
    with pytest.warns(FactorizationWarning, match=r"cut classifier.out below the minimum rank 8"):
        out = factorize(classifier_128x4(), SVD(rank=1, include=["classifier.*"], include_head=True))
    assert out.classifier.out.rank == (1,) and report_of(out, "factorize")["below_min_rank"] == ["classifier.out"]
    _, caught = quiet_factorize(classifier_128x4(), SVD(rank=1, include=["classifier.*"], include_head=True, min_rank=1))
    assert not caught


@pytest.mark.parametrize("config", [Tucker(target_macs=0.5), CP(target_macs=0.5, iterations=3)], ids=["tucker", "cp"])
def test_nothing_to_factorize_after_the_stem_is_said_with_the_achieved_ratio(config):
    torch.manual_seed(0)
    model = build_model("mlp", hidden=[32, 32], input_size=8, num_classes=3).eval()  # no convolution at all
    before = model(X)
    with pytest.warns(FactorizationWarning, match=r"kept 1\.00 of the macs, not the 0\.50 asked \(0 layer"):
        out = factorize(model, config)
    report = report_of(out, "factorize")
    assert report["target"] == {"target_macs": 0.5, "allocation": "uniform"} and report["met"] is False
    assert report["achieved"] == {"params": 1.0, "macs": 1.0}
    assert {s["layer"] for s in report["skipped"]} == {"features.0.fc", "features.1.fc", "classifier.out"}
    assert torch.equal(out(X), before)


def test_a_missed_budget_names_the_reasons():
    torch.manual_seed(0)
    model = build_model("cnn", channels=[8, 32], hidden=0, input_size=8, num_classes=3).eval()
    with pytest.warns(FactorizationWarning, match=r"Tucker kept 0\.\d\d of the macs, not the 0\.10 asked \(1 layer.*"
                                                  r"features.0.conv: a single input channel") as caught:
        out = factorize(model, Tucker(target_macs=0.1))
    report = report_of(out, "factorize")
    assert report["met"] is False and report["layers"][0]["ranks"] == [8, 8]  # the floor, not below
    assert f"kept {report['achieved']['macs']:.2f} of the macs" in str(caught[0].message)


def test_attention_and_encoder_layers_are_left_alone_with_reasons():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
    model = nn.Sequential(nn.TransformerEncoder(layer, 1, enable_nested_tensor=False), nn.Flatten(), nn.Linear(64, 3))
    x = torch.randn(2, 4, 16)
    plan = plan_factorization(model, SVD(rank=8), svd.METHOD, x[:1], params_before=0, macs_before=0)
    reasons = {s["layer"]: s["reason"] for s in plan.skipped}
    assert "nn.MultiheadAttention reads out_proj's weight" in reasons["0.layers.0.self_attn.out_proj"]
    assert "fast path" in reasons["0.layers.0.linear1"] and "fast path" in reasons["0.layers.0.linear2"]
    assert plan.heads == ["2"] and not plan.ranks


def test_layers_that_never_run_and_parts_of_factorized_blocks_are_skipped():
    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.spare, self.head = nn.Linear(64, 32), nn.Linear(64, 32), nn.Linear(32, 3)

        def forward(self, x):
            return self.head(self.used(x.flatten(1)))

    out, _ = quiet_factorize(Unused(), SVD(rank=8), example_inputs=X)
    reasons = {s["layer"]: s["reason"] for s in report_of(out, "factorize")["skipped"]}
    assert reasons["spare"].startswith("did not run as a module")
    out, _ = quiet_factorize(out, SVD(rank=8), example_inputs=X)  # again: the block's own layers stay
    reasons = {s["layer"]: s["reason"] for s in report_of(out, "factorize")["skipped"]}
    assert "part of a factorized block" in reasons["used.in_proj"]


def test_finding_the_head_needs_inputs_unless_it_is_included():
    model = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 3))
    with pytest.raises(ConfigError, match="classifier head") as info:
        factorize(copy.deepcopy(model), SVD(rank=8))
    assert "include_head=True" in info.value.hint
    out = factorize(model, SVD(rank=8, include_head=True, include=["0"]))
    assert type(out[0]).__name__ == "LowRankLinear"


def test_inputs_come_from_the_loader_in_their_own_dtype():
    class Tokens(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.fc, self.head = nn.Embedding(20, 32), nn.Linear(32, 32), nn.Linear(32, 3)

        def forward(self, ids):
            assert ids.dtype == torch.long  # never float zeros
            return self.head(torch.relu(self.fc(self.embed(ids).mean(1))))

    batches = [{"ids": torch.randint(0, 20, (4, 6)), "labels": torch.zeros(4, dtype=torch.long)}]
    out, _ = quiet_factorize(Tokens(), SVD(target_macs=0.6), batches)
    report = report_of(out, "factorize")
    assert [layer["layer"] for layer in report["layers"]] == ["fc"] and report["heads"] == ["head"]
    assert report["macs_after"] < report["macs_before"]


def test_a_failing_decomposition_leaves_the_model_unchanged(monkeypatch):
    torch.manual_seed(0)
    model = build_model("cnn", channels=[8, 16, 16], hidden=0, input_size=8, num_classes=3).eval()
    before = copy.deepcopy(model)
    calls = []

    def flaky(module, ranks, config=None):
        calls.append(module)
        if len(calls) == 2:
            raise RuntimeError("did not converge")
        return svd.decompose(module, ranks, config)

    from slimkit.factorization import apply

    monkeypatch.setitem(apply.METHODS, SVD, svd.METHOD.__class__(**{**svd.METHOD.__dict__, "decompose": flaky}))
    with pytest.raises(ModelError, match=r"could not factorize layer 'features.1.conv'.*did not converge"):
        factorize(model, SVD(rank=8))
    assert len(calls) == 2 and str(model) == str(before) and torch.equal(model(X), before(X))
    assert not getattr(model, "slimkit_history", [])
