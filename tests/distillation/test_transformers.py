"""Distillation for transformers: logits KD on ModelOutputs, hidden states across widths,
attention maps and relations, layer maps, a student from teacher layers, DeiT from a CNN."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from slimkit.distillation import (
    AttentionLoss,
    DeiTLoss,
    DistillConfig,
    HiddenStateLoss,
    Outputs,
    RelationLoss,
    derive_student,
    distill,
    init_from_layers,
    layer_map,
    materialize,
    shallow_student,
    transformer_losses,
)
from slimkit.errors import ConfigError, ModelError
from slimkit.export import report_of
from slimkit.models import DEFAULT_TEACHER, build_model
from slimkit.train import TrainConfig

pytest.importorskip("transformers")

BERT = {"input_size": 12, "vocab_size": 40, "heads": 2, "intermediate_size": 32, "max_length": 16, "num_classes": 3}
ONE_EPOCH = TrainConfig(epochs=1, progress=False, lr=1e-3)


@pytest.fixture
def tokens() -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 40, (32, 12), generator=generator)
    return DataLoader(TensorDataset(ids, (ids[:, 0] % 3)), batch_size=8)


def test_hidden_states_learn_an_adapter_across_widths():
    s = Outputs(torch.zeros(2, 3), {"s": torch.randn(2, 5, 8, requires_grad=True)})
    t = Outputs(torch.zeros(2, 3), {"t": torch.randn(2, 5, 16)})
    loss = HiddenStateLoss("s", "t")
    assert materialize(loss, s, t) == ["adapter.proj.weight", "adapter.proj.bias"]
    value = loss(s, t)
    value.backward()
    assert value > 0 and loss.adapter.proj.weight.grad is not None
    with pytest.raises(ModelError, match="5 and 4 tokens"):
        loss(s, Outputs(torch.zeros(2, 3), {"t": torch.randn(2, 4, 16)}))


def test_attention_and_relation_losses_are_zero_on_the_same_features_only():
    q, k = torch.randn(2, 6, 8), torch.randn(2, 6, 8)
    same = Outputs(torch.zeros(2, 3), {"q": q, "k": k})
    other = Outputs(torch.zeros(2, 3), {"q": torch.randn(2, 6, 8), "k": k})
    attention = AttentionLoss("q", "k", "q", "k", heads=2)
    assert float(attention(same, same)) == pytest.approx(0.0, abs=1e-6) and float(attention(same, other)) > 0
    wide = Outputs(torch.zeros(2, 3), {"v": torch.randn(2, 6, 16)})
    assert float(RelationLoss("q", "v", heads=4)(same, wide)) > 0  # widths 8 and 16, 4 relation heads
    mask = {"attention_mask": torch.tensor([[1] * 6, [1] * 4 + [0] * 2])}
    masked = attention(same, other, (mask, None))
    assert torch.isfinite(masked) and not torch.equal(masked, attention(same, other))
    # one mapping with its labels (a Hugging Face-style batch) masks the same keys
    assert torch.equal(attention(same, other, {**mask, "labels": torch.tensor([0, 1])}), masked)
    with pytest.raises(ConfigError, match="use the 'relation' loss"):
        AttentionLoss("q", "k", "q", "k", heads=2, teacher_heads=4)


def test_deit_loss_follows_the_labels_and_the_teachers_decision():
    labels, decided = torch.tensor([1, 2]), torch.tensor([[0.0, 0.0, 5.0], [5.0, 0.0, 0.0]])
    right = Outputs(torch.zeros(2, 3), {"cls": torch.eye(3)[labels] * 20, "dist": decided * 4})
    wrong = Outputs(torch.zeros(2, 3), {"cls": torch.eye(3)[labels] * 20, "dist": -decided * 4})
    loss = DeiTLoss("cls", "dist")
    assert float(loss(right, Outputs(decided), (None, labels))) < 0.01 < float(loss(wrong, Outputs(decided), (None, labels)))


def test_layer_maps():
    assert layer_map(2, 4) == [1, 3] and layer_map(3, 12, "first") == [0, 4, 8] and layer_map(2, 6, "last") == [4, 5]
    with pytest.raises(ConfigError, match="unknown strategy"):
        layer_map(2, 4, "middle")


def test_kd_hidden_attention_and_relation_distill_a_narrower_shallower_bert(tokens):
    torch.manual_seed(0)
    teacher = build_model("hf_bert", hidden_size=32, layers=2, **BERT).eval().requires_grad_(False)
    student = build_model("hf_bert", hidden_size=16, layers=1, **BERT)
    specs = transformer_losses(student, teacher, kd=0.5, ce=0.5, hidden=1.0, attention=1.0, relation=1.0)
    paths = {s["label"] if "label" in s else s["name"]: s for s in specs}
    assert paths["hidden_0"]["teacher"] == "bert.encoder.layer.1"
    assert paths["attention_0"]["teacher_query"] == "bert.encoder.layer.1.attention.self.query"
    assert paths["relation_v"]["student"] == "bert.encoder.layer.0.attention.self.value"
    student = distill(student, DistillConfig(losses=specs, train=ONE_EPOCH), tokens, teacher=teacher)
    last = report_of(student, "distill")["history"][-1]
    assert {"train_kd", "train_hidden_0", "train_attention_0", "train_relation_q"} <= set(last)
    assert all(torch.isfinite(torch.tensor(v)) for k, v in last.items() if k.startswith("train_"))


@pytest.mark.parametrize("cache_teacher", ["auto", "off"])  # off: the teacher online, as on data too big to cache
def test_attention_maps_distill_from_batches_of_named_inputs_with_labels(tokens, cache_teacher):
    # batches as Hugging Face collators give them: one mapping, padding in attention_mask
    torch.manual_seed(0)
    ids, labels = tokens.dataset.tensors
    mask = torch.ones_like(ids)
    mask[::2, 9:] = 0
    rows = [{"input_ids": i, "attention_mask": m, "labels": y} for i, m, y in zip(ids, mask, labels, strict=True)]
    teacher = build_model("hf_bert", hidden_size=16, layers=2, **BERT).eval().requires_grad_(False)
    student = shallow_student(teacher)
    specs = transformer_losses(student, teacher, kd=0.9, ce=0.1, hidden=0.5, attention=0.5)
    config = DistillConfig(losses=specs, train=ONE_EPOCH, cache_teacher=cache_teacher)
    distill(student, config, DataLoader(rows, batch_size=8), teacher=teacher)
    last = report_of(student, "distill")["history"][-1]
    assert {"train_kd", "train_ce", "train_attention_0"} <= set(last)
    assert all(torch.isfinite(torch.tensor(v)) for k, v in last.items() if k.startswith("train_"))


def test_distill_init_teacher_starts_a_shallower_vit_from_every_other_teacher_layer():
    torch.manual_seed(0)
    knobs = {"input_size": 8, "patch_size": 4, "hidden_size": 8, "heads": 2, "num_classes": 3}
    teacher = build_model("hf_vit", layers=4, **knobs).eval()
    student = build_model("hf_vit", layers=2, **knobs)
    x = torch.randn(8, 1, 8, 8)
    loader = DataLoader(TensorDataset(x, torch.randint(0, 3, (8,))), batch_size=4)
    config = DistillConfig(init="teacher", train=TrainConfig(epochs=1, lr=1e-9, progress=False))
    distill(student, config, loader, teacher=teacher)
    assert report_of(student, "init")["teacher_layers"] == [0, 2]
    assert torch.allclose(student.vit.layers[1].mlp.fc2.weight, teacher.vit.layers[2].mlp.fc2.weight, atol=1e-6)


def test_a_shallow_student_starts_from_every_other_teacher_layer():
    teacher = build_model("hf_bert", hidden_size=16, layers=4, **BERT)
    name, kwargs = derive_student(teacher, width=1.0, depth=0.5)
    assert (name, kwargs["layers"], kwargs["hidden_size"]) == ("hf_bert", 2, 16)
    student = shallow_student(teacher)
    assert torch.equal(student.bert.encoder.layer[1].attention.self.query.weight,
                       teacher.bert.encoder.layer[2].attention.self.query.weight)
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)
    assert report_of(student, "init")["teacher_layers"] == [0, 2]
    narrow = build_model("hf_bert", hidden_size=8, layers=2, **BERT)
    with pytest.raises(ConfigError, match="same width"):
        init_from_layers(narrow, teacher)
    assert derive_student(teacher, width=0.5)[1]["hidden_size"] == 8


def test_deit_student_distills_from_the_default_cnn_teacher():
    torch.manual_seed(0)
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    teacher = build_model(DEFAULT_TEACHER[0], **DEFAULT_TEACHER[1]).eval().requires_grad_(False)
    student = build_model("hf_vit", patch_size=7, hidden_size=16, layers=1, heads=2, intermediate_size=16,
                          distillation_token=True)
    config = DistillConfig(losses=[{"name": "deit"}], train=ONE_EPOCH)
    student = distill(student, config, DataLoader(TensorDataset(x, y), batch_size=8), teacher=teacher)
    assert "train_deit" in report_of(student, "distill")["history"][-1]
