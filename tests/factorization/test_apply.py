import copy
import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

from slimkit.errors import ConfigError
from slimkit.evaluate import count_macs, count_params
from slimkit.export import report_of
from slimkit.export.serialize import load_model, save_model
from slimkit.factorization import CP, SVD, FactorizationWarning, Tucker, factorize
from slimkit.models import MODELS, build_model

X = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def tiny(name):
    torch.manual_seed(0)
    return build_model(name, input_size=8, num_classes=3).eval()


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("config", [SVD(target_params=0.6), Tucker(target_macs=0.8), CP(rank=4, iterations=5)],
                         ids=["svd", "tucker", "cp"])
def test_every_model_factorizes_or_explains(name, config):
    model = tiny(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = factorize(copy.deepcopy(model), config)
    report = report_of(out, "factorize")
    assert out(X).shape == (4, 3)
    assert report["heads"] == ["classifier.out"] and isinstance(out.classifier.out, nn.Linear)
    for skipped in report["skipped"]:
        assert skipped["reason"]
    warned = any(issubclass(w.category, FactorizationWarning) for w in caught)
    assert warned == (not report["met"] or bool(report["below_min_rank"]))
    if report["layers"] and config.budget() is not None:
        kind, ratio = config.budget()
        after = report["params_after"] if kind == "params" else report["macs_after"]
        before = report["params_before"] if kind == "params" else report["macs_before"]
        assert (after <= ratio * before + 1) == report["met"]  # a miss is reported (and warned), never hidden
        assert count_params(out) < count_params(model)


def test_counts_drop_as_computed_by_hand():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 3))
    out = factorize(model, SVD(rank=4, include=["1"], min_rank=4), example_inputs=torch.zeros(1, 1, 8, 8))
    assert count_params(out) == 4 * (64 + 32) + 32 + 32 * 3 + 3
    assert count_macs(out, torch.zeros(1, 1, 8, 8)) == 4 * (64 + 32) + 32 * 3
    assert report_of(out, "factorize")["layers"] == [{"layer": "1", "method": "svd", "ranks": [4], "params_before": 64 * 32 + 32,
                                            "params_after": 4 * 96 + 32, "macs_before": 2048, "macs_after": 384}]


def test_round_to_gives_multiples_and_still_meets_the_budget():
    out = factorize(tiny("cnn"), Tucker(target_macs=0.6, round_to=4))
    report = report_of(out, "factorize")
    assert report["layers"] and all(r % 4 == 0 for layer in report["layers"] for r in layer["ranks"])
    assert report["macs_after"] <= 0.6 * report["macs_before"]


def test_energy_one_keeps_outputs_and_skips_unhelpful_layers():
    model = tiny("cnn")
    with pytest.warns(FactorizationWarning, match="factorized no layer; the model is unchanged"):
        out = factorize(copy.deepcopy(model), Tucker(energy=1.0))
    assert not report_of(out, "factorize")["layers"]  # full energy is full rank: never smaller
    assert any("not be smaller" in s["reason"] for s in report_of(out, "factorize")["skipped"])
    torch.testing.assert_close(out(X), model(X))


def test_rank_too_large_names_layer_and_max():
    with pytest.raises(ConfigError, match=r"layer 'classifier.out'.*max \[3\]"):
        factorize(tiny("mlp"), SVD(rank=8, include=["classifier.*"], include_head=True))


def test_mac_target_without_known_input_asks_for_example_inputs():
    with pytest.raises(ConfigError, match="example_inputs"):
        factorize(nn.Sequential(nn.Linear(8, 8)), SVD(target_macs=0.5))


def test_vbmf_allocation_alone_picks_ranks():
    out = factorize(tiny("mlp"), SVD(allocation="vbmf", include=["features.*"]))
    assert report_of(out, "factorize")["layers"] or report_of(out, "factorize")["skipped"]


LOAD_IN_FRESH_PROCESS = """
import sys, torch
import slimkit.factorization, slimkit.sharing, slimkit.transform  # register their replayers
from slimkit.export.serialize import load_model
torch.set_num_threads(1)  # the same reduction order as the test process
model = load_model(sys.argv[1])
x = torch.load(sys.argv[2], weights_only=True)
torch.save(model(x), sys.argv[3])
"""


def test_every_structural_change_reloads_in_a_fresh_process(tmp_path):
    from slimkit.sharing import ShareConfig, share
    from slimkit.transform import LightenConfig, fuse, lighten

    model = build_model("cnn", channels=[4, 8, 8], hidden=16, input_size=8, num_classes=3).eval()
    model = factorize(model, Tucker(ranks=(4, 4), include=["features.1.conv"], min_rank=4))
    model = factorize(model, SVD(rank=2, include=["classifier.fc1"], min_rank=2))
    model = lighten(model, LightenConfig(include=["features.2.conv"]))
    model = share(fuse(model), ShareConfig(bits=2, include=["classifier.out"]))
    save_model(model, tmp_path / "m")
    torch.save(X, tmp_path / "x.pt")
    subprocess.run([sys.executable, "-c", LOAD_IN_FRESH_PROCESS, str(tmp_path / "m"), str(tmp_path / "x.pt"),
                    str(tmp_path / "y.pt")], check=True, timeout=120)
    assert torch.equal(torch.load(tmp_path / "y.pt", weights_only=True), model(X))
    kinds = [c["kind"] for c in load_model(tmp_path / "m").slimkit_history if c["kind"] != "report"]
    assert kinds == ["factorize", "factorize", "lighten", "fuse", "share"]
