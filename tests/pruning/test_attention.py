"""AttentionPruning: whole heads by importance, feed-forward neurons, whole layers, on Hugging
Face BERT/ViT and nn.TransformerEncoder; counts and configs updated; replayed on load."""

import subprocess
import sys

import pytest
import torch
import zoo
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from slimkit.errors import ConfigError, ModelError
from slimkit.export import load_model, report_of, save_model
from slimkit.models import build_model
from slimkit.pruning import AttentionPruning, HeadPrunedAttention, StructuredPruning, apply_removals, prune
from slimkit.pruning.attention_sites import find_ffns, find_heads

pytest.importorskip("transformers")

BERT = {"input_size": 12, "vocab_size": 40, "hidden_size": 32, "layers": 2, "heads": 4, "intermediate_size": 32,
        "max_length": 16, "num_classes": 3}


@pytest.fixture
def tokens() -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    ids, y = torch.randint(0, 40, (24, 12), generator=generator), torch.randint(0, 3, (24,), generator=generator)
    return DataLoader(TensorDataset(ids, y), batch_size=8)


def _silence_head(model: nn.Module, out: str, head: int, size: int) -> None:
    with torch.no_grad():
        model.get_submodule(out).weight[:, head * size:(head + 1) * size] = 0


def test_the_head_that_does_nothing_goes_first_and_the_outputs_stay(tokens):
    torch.manual_seed(0)
    model = build_model("hf_bert", **BERT).eval()
    _silence_head(model, "bert.encoder.layer.1.attention.output.dense", 2, 8)
    ids = next(iter(tokens))[0]
    before = model(ids).logits
    prune(model, AttentionPruning(heads=0.125), tokens)  # 1 of 8 heads
    attention = model.bert.encoder.layer[1].attention.self
    assert attention.num_attention_heads == 3 and attention.all_head_size == 24 and attention.query.out_features == 24
    assert model.bert.encoder.layer[0].attention.self.num_attention_heads == 4
    assert model.config.pruned_heads == {1: [2]}
    assert torch.allclose(model(ids).logits, before, atol=1e-5)
    assert report_of(model, "prune")["after"]["heads"]["bert.encoder.layer.1.attention.self"] == 3


def test_heads_ffn_and_layers_pruned_bert_reloads_in_a_fresh_process(tokens, tmp_path):
    torch.manual_seed(0)
    model = build_model("hf_bert", **{**BERT, "layers": 3}).eval()
    prune(model, AttentionPruning(heads=0.5, ffn=0.5, layers=1, allocation="uniform", ffn_round_to=8), tokens)
    assert len(model.bert.encoder.layer) == model.config.num_hidden_layers == 2
    assert all(layer.attention.self.num_attention_heads == 2 for layer in model.bert.encoder.layer)
    assert all(layer.intermediate.dense.out_features == 16 for layer in model.bert.encoder.layer)
    assert model.config.intermediate_size == 16
    ids = next(iter(tokens))[0]
    save_model(model, tmp_path / "m")
    torch.save(ids, tmp_path / "ids.pt")
    torch.save(model(ids).logits.detach(), tmp_path / "ref.pt")
    code = ("import torch; from slimkit.export import load_model; m = load_model(r'{d}/m'); "
            "print(torch.equal(m(torch.load(r'{d}/ids.pt', weights_only=True)).logits, torch.load(r'{d}/ref.pt', weights_only=True)), "
            "m.config.num_hidden_layers)")
    out = subprocess.run([sys.executable, "-c", code.format(d=tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-2:] == ["True", "2"]


@pytest.mark.parametrize("layers", [None, 1])
def test_vit_reaches_half_the_macs_with_heads_and_ffn(tmp_path, layers):
    # layers=1: the least important layer goes first, then heads and neurons up to the same target
    torch.manual_seed(0)
    model = build_model("hf_vit", input_size=8, patch_size=4, hidden_size=32, layers=3, heads=4,
                        intermediate_size=64, num_classes=3).eval()
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))
    prune(model, AttentionPruning(target_macs=0.5, layers=layers), DataLoader(TensorDataset(x, y), batch_size=8))
    report = report_of(model, "prune")
    assert report["after"]["depth"] == {"vit.layers": 3 - (layers or 0)}
    assert model.config.num_hidden_layers == 3 - (layers or 0)
    assert report["macs"][1] <= 0.5 * report["macs"][0]
    assert report["macs"][1] >= 0.4 * report["macs"][0]  # the search stops near the target, not far below
    sites = find_heads(model)
    assert all(model.get_submodule(s.projections[0]).out_features == s.heads * 8 for s in sites)
    assert torch.equal(load_model(save_model(model, tmp_path / "vit"))(x).logits, model(x).logits)


def test_latency_balance_times_head_heavy_mixes_and_keeps_the_fastest(tmp_path):
    torch.manual_seed(0)
    model = build_model("hf_vit", input_size=8, patch_size=4, hidden_size=32, layers=2, heads=4,
                        intermediate_size=64, num_classes=3).eval()
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))
    config = AttentionPruning(target_macs=0.5, balance="latency", latency_batch_size=4, threads=1)
    prune(model, config, DataLoader(TensorDataset(x, y), batch_size=8))
    report = report_of(model, "prune")
    timings = {k: v for k, v in report["mixes_ms"].items() if k not in ("batch_size", "unpruned")}
    assert "equal shares" in timings and len(timings) >= 3  # head-heavy mixes for the same target
    assert report["mixes_ms"]["batch_size"] == 4 and report["mix"] == min(timings, key=timings.get)
    assert report["mixes_speedup"] == pytest.approx({k: report["mixes_ms"]["unpruned"] / v for k, v in timings.items()})
    assert report["macs"][1] <= 0.5 * report["macs"][0]
    assert torch.equal(load_model(save_model(model, tmp_path / "vit"))(x).logits, model(x).logits)
    with pytest.raises(ConfigError, match="balance 'latency'"):
        AttentionPruning(heads=0.5, balance="latency")


@pytest.mark.parametrize("goal", [1.5, 3.0])
def test_min_speedup_keeps_the_least_changed_mix_that_is_fast_enough(monkeypatch, goal):
    # timings are faked (a tiny model's are noise): the unpruned model 10 ms, the mixes faster
    # the more heads they remove; with goal 3.0 none is fast enough and the fastest is kept
    from slimkit import evaluate

    fake_ms = {"unpruned": 10.0, "equal shares": 8.0, "heads 0.25": 9.0, "heads 0.5": 6.0, "heads 0.625": 5.0,
               "heads 0.75": 4.0}
    monkeypatch.setattr(evaluate, "measure_latency", lambda models, *a, batch_sizes, **k: {
        name: {batch_sizes[0]: {"median_ms": fake_ms.get(name, 7.0)}} for name in models})
    torch.manual_seed(0)
    model = build_model("hf_vit", input_size=8, patch_size=4, hidden_size=32, layers=2, heads=4,
                        intermediate_size=64, num_classes=3).eval()
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))
    prune(model, AttentionPruning(target_macs=0.5, balance="latency", min_speedup=goal),
          DataLoader(TensorDataset(x, y), batch_size=8))
    report = report_of(model, "prune")
    kl, speedup = report["mixes_kl"], report["mixes_speedup"]
    assert set(kl) == set(speedup) and all(v >= 0 for v in kl.values())
    fast = [k for k in speedup if speedup[k] >= goal]
    assert report["mix"] == (min(fast, key=kl.get) if fast else max(speedup, key=speedup.get))
    assert report["min_speedup_met"] is bool(fast)
    with pytest.raises(ConfigError, match="set balance: latency"):
        AttentionPruning(target_macs=0.5, min_speedup=1.5)


def test_transformer_encoder_heads_are_rebuilt_with_fewer_heads(tmp_path):
    torch.manual_seed(0)
    model = zoo.build("transformer", input_size=8, num_classes=3, dim=32, heads=4, depth=2).eval()
    ids, y = torch.randint(0, zoo.LEVELS, (16, 16)), torch.randint(0, 3, (16,))
    loader = DataLoader(TensorDataset(ids, y), batch_size=8)
    prune(model, AttentionPruning(heads=0.5, ffn=0.25, layers=[1], allocation="uniform"), loader)
    attention = model.encoder.layers[0].self_attn
    assert isinstance(attention, HeadPrunedAttention) and attention.num_heads == 2 and attention.head_dim == 8
    assert model.encoder.num_layers == len(model.encoder.layers) == 1
    assert model.encoder.layers[0].linear1.out_features == 48
    fresh = zoo.build("transformer", input_size=8, num_classes=3, dim=32, heads=4, depth=2)
    reloaded = load_model(save_model(model, tmp_path / "t"), model=fresh)
    assert torch.equal(reloaded(ids), model(ids))


def test_head_pruned_attention_computes_what_multihead_attention_does():
    torch.manual_seed(0)
    for batch_first in (True, False):
        mha = nn.MultiheadAttention(16, 4, batch_first=batch_first).eval()
        from slimkit.pruning.head_attention import without_heads

        same = without_heads(mha, [0, 1, 2, 3])
        x = torch.randn(2, 5, 16) if batch_first else torch.randn(5, 2, 16)
        padding = torch.tensor([[False] * 4 + [True], [False] * 5])
        causal = torch.ones(5, 5, dtype=torch.bool).triu(1)
        want, weights = mha(x, x, x, key_padding_mask=padding, attn_mask=causal)
        got, got_weights = same(x, x, x, key_padding_mask=padding, attn_mask=causal)
        assert torch.allclose(got, want, atol=1e-5) and torch.allclose(got_weights, weights, atol=1e-6)
        fast, _ = same(x, x, x, key_padding_mask=padding, need_weights=False)
        assert torch.allclose(fast, mha(x, x, x, key_padding_mask=padding, need_weights=False)[0], atol=1e-5)


def test_explicit_layers_that_do_not_fit_leave_the_model_unchanged(tokens):
    model = build_model("hf_bert", **BERT).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError, match="does not fit 'bert.encoder.layer'"):
        prune(model, AttentionPruning(layers=[0, 5]), tokens)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with pytest.raises(ConfigError, match="criterion 'taylor' scores heads on data"):
        prune(model, AttentionPruning(heads=0.5), example_inputs=torch.zeros(1, 12, dtype=torch.long))


def test_channel_pruning_never_regroups_hf_heads_and_refuses_partial_heads(tokens):
    model = build_model("hf_bert", **BERT).eval()
    ids = next(iter(tokens))[0]
    prune(model, StructuredPruning(ratio=0.25), tokens)
    for layer in model.bert.encoder.layer:  # the residual width shrank; the heads stayed whole
        assert layer.attention.self.query.out_features == 32 and layer.attention.self.num_attention_heads == 4
    assert model(ids).logits.shape == (8, 3)
    fresh = build_model("hf_bert", **BERT).eval()
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    with pytest.raises(ModelError, match="not a multiple of its head size 8"):
        apply_removals(fresh, ids[:1], {"bert.encoder.layer.0.attention.self.query": [0, 1, 2]})
    with pytest.raises(ModelError, match="heads are removed whole"):
        apply_removals(fresh, ids[:1], {"bert.encoder.layer.0.attention.self.query": list(range(8))})
    assert all(torch.equal(v, before[k]) for k, v in fresh.state_dict().items())
    with pytest.raises(ModelError, match="not a multiple of its head size"):
        prune(fresh, StructuredPruning(ratios={"*.attention.self.query": 0.3}), tokens)


def test_sites_are_found_in_both_hugging_face_layouts():
    bert = build_model("hf_bert", **BERT)
    vit = build_model("hf_vit", input_size=8, patch_size=4, hidden_size=16, layers=1, heads=2, intermediate_size=16)
    assert find_heads(bert)[0].out == "bert.encoder.layer.0.attention.output.dense"
    assert find_heads(vit)[0].out.endswith("attention.o_proj")
    assert find_ffns(vit)[0].up.endswith("mlp.fc1")
