import pytest
import torch
from torch import nn

from slimkit.distillation.losses import (
    LOSSES,
    HardLabelLoss,
    KDLoss,
    Outputs,
    WeightedSumLoss,
    build_loss,
    build_losses,
    loss_arguments,
    materialize,
    required_features,
)
from slimkit.errors import ConfigError

# Arguments each registered loss needs in these tests; a new registry entry must add one,
# so every loss is exercised by the parametrized tests below.
ARGS = {
    "kd": {},
    "ce": {},
    "dkd": {},
    "logit_std": {},
    "dist": {},
    "fitnet": {"student": "block", "teacher": "block"},
    "at": {"student": "block", "teacher": "block"},
    "sp": {"student": "block", "teacher": "block"},
    "rkd": {},
    "pkt": {"student": "block", "teacher": "block"},
    "adversarial": {"hidden": 8},
    "hidden": {"student": "tokens", "teacher": "tokens"},
    "relation": {"student": "tokens", "teacher": "tokens", "heads": 2},
    "attention": {"student_query": "q", "student_key": "k", "teacher_query": "q", "teacher_key": "k", "heads": 2},
    "deit": {},
}
# Losses that are exactly zero when student and teacher outputs coincide (not CE; not a
# randomly initialized FitNet adapter).
ZERO_WHEN_EQUAL = {"kd", "dkd", "logit_std", "dist", "at", "sp", "rkd", "pkt"}


class Const(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, student, teacher, batch=None):
        return student.logits.sum() * 0 + self.value


def pair(requires_grad=False):
    """Student and teacher outputs: logits, a conv feature map ``block``, token features
    ``tokens``/``q``/``k`` (N, L, D; the teacher wider) and the two heads of a DeiT student."""
    torch.manual_seed(0)
    ls, lt = torch.randn(6, 4), torch.randn(6, 4)
    student = {"block": torch.randn(6, 3, 4, 4), "tokens": torch.randn(6, 5, 8), "q": torch.randn(6, 5, 8),
               "k": torch.randn(6, 5, 8), "cls_classifier": torch.randn(6, 4), "distillation_classifier": torch.randn(6, 4)}
    teacher = {"block": torch.randn(6, 5, 2, 2), "tokens": torch.randn(6, 5, 12), "q": torch.randn(6, 5, 12),
               "k": torch.randn(6, 5, 12)}
    for x in (ls, lt, *student.values(), *teacher.values()):
        x.requires_grad_(requires_grad)
    return Outputs(ls, student), Outputs(lt, teacher), (None, torch.tensor([0, 1, 2, 3, 0, 1]))


def test_every_registered_loss_has_test_arguments():
    assert set(LOSSES.names()) == set(ARGS)


@pytest.mark.parametrize("name", sorted(ARGS))
def test_gradient_reaches_student_not_teacher(name):
    student, teacher, batch = pair(requires_grad=True)
    _, _, loss = build_loss({"name": name, **ARGS[name]})
    materialize(loss, student, teacher)
    value = loss(student, teacher, batch)
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    grads = [t.grad for t in (student.logits, *student.features.values()) if t.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    assert teacher.logits.grad is None and all(t.grad is None for t in teacher.features.values())


@pytest.mark.parametrize("name", sorted(ZERO_WHEN_EQUAL))
def test_zero_loss_when_student_equals_teacher(name):
    student, _, batch = pair()
    _, _, loss = build_loss({"name": name, **ARGS[name]})
    assert float(loss(student, student, batch)) == pytest.approx(0.0, abs=1e-6)


def test_weighted_sum_sums_with_weights_and_reports_terms():
    loss = WeightedSumLoss({"a": (0.5, Const(2.0)), "b": (3.0, Const(-1.0)), "off": (0.0, Const(7.0))})
    student, teacher, batch = pair()
    total, terms = loss(student, teacher, batch)
    assert float(total) == pytest.approx(0.5 * 2.0 + 3.0 * -1.0)
    assert terms == {"a": 2.0, "b": -1.0}  # unweighted values; zero-weight terms skipped
    loss.set_weight("off", 1.0)
    assert float(loss(student, teacher, batch)[0]) == pytest.approx(5.0)


def test_weighted_sum_hinton_mix_and_nested_logs():
    student, teacher, batch = pair()
    alpha = 0.9
    mix = WeightedSumLoss({"kd": (alpha, KDLoss()), "ce": (1 - alpha, HardLabelLoss())})
    total, terms = mix(student, teacher, batch)
    assert float(total) == pytest.approx(alpha * terms["kd"] + (1 - alpha) * terms["ce"])
    outer = WeightedSumLoss({"logit": (2.0, mix), "c": (1.0, Const(1.0))})
    total2, terms2 = outer(student, teacher, batch)
    assert float(total2) == pytest.approx(2 * float(total) + 1)
    assert set(terms2) == {"logit", "logit.kd", "logit.ce", "c"}


def test_weighted_sum_errors():
    with pytest.raises(ConfigError, match="at least one term"):
        WeightedSumLoss({})
    with pytest.raises(ConfigError, match="without '.'"):
        WeightedSumLoss({"a.b": (1.0, Const(1.0))})
    with pytest.raises(ConfigError, match=r"\(weight, loss_module\)"):
        WeightedSumLoss({"a": Const(1.0)})
    loss = WeightedSumLoss({"kd": (1.0, Const(1.0))})
    with pytest.raises(ConfigError, match="no term 'kdd'. Did you mean 'kd'"):
        loss.set_weight("kdd", 1.0)
    with pytest.raises(ConfigError, match="finite number"):
        loss.set_weight("kd", float("nan"))
    loss.set_weight("kd", 0)
    with pytest.raises(ConfigError, match="every term has weight 0"):
        loss(*pair())


def test_build_loss_from_yaml_like_spec():
    label, weight, loss = build_loss({"name": "kd", "weight": 0.9, "temperature": "3"})
    assert (label, weight) == ("kd", 0.9)
    assert isinstance(loss, KDLoss) and loss.temperature == 3.0
    assert build_loss({"name": "ce"}).weight == 1.0
    assert build_loss({"name": "at", "student": "a", "teacher": "b", "label": "at_l2"}).label == "at_l2"


def test_build_losses_labels_repeats_and_collects_feature_paths():
    loss = build_losses(
        [
            {"name": "kd", "weight": 0.9},
            {"name": "at", "student": "s.1", "teacher": "t.1"},
            {"name": "at", "student": "s.2", "teacher": "t.2", "weight": 2},
        ]
    )
    assert loss.weights == {"kd": 0.9, "at": 1.0, "at_2": 2.0}
    assert required_features(loss) == (["s.1", "s.2"], ["t.1", "t.2"])


def test_unknown_loss_suggests_a_name():
    with pytest.raises(ConfigError, match="unknown distillation loss 'dk'. Did you mean 'dkd'"):
        build_loss({"name": "dk"})
    with pytest.raises(ConfigError, match="has no 'name'"):
        build_loss({"weight": 1.0})


def test_unknown_argument_names_the_loss_and_its_valid_arguments():
    with pytest.raises(ConfigError, match="loss 'kd': unknown argument 'temprature'. Did you mean 'temperature'") as info:
        build_loss({"name": "kd", "temprature": 4})
    assert "valid arguments of 'kd': temperature" in info.value.hint
    with pytest.raises(ConfigError, match="'fitnet': missing argument.*student, teacher"):
        build_loss({"name": "fitnet"})
    with pytest.raises(ConfigError, match="'dkd': 'beta'.*valid number"):
        build_loss({"name": "dkd", "beta": "lots"})
    with pytest.raises(ConfigError, match="'fitnet': 'loss'"):
        build_loss({"name": "fitnet", "student": "a", "teacher": "b", "loss": "l1"})
    with pytest.raises(ConfigError, match="weight must be a finite number"):
        build_loss({"name": "kd", "weight": "heavy"})
    with pytest.raises(ConfigError, match="non-empty list"):
        build_losses({"name": "kd"})


def test_loss_arguments_lists_defaults():
    assert loss_arguments("dkd") == {"alpha": 1.0, "beta": 8.0, "temperature": 4.0, "standardize": False}
    assert loss_arguments("fitnet")["student"] is ...


def test_materialize_creates_adapters_before_the_optimizer():
    student, teacher, batch = pair()
    loss = build_losses([{"name": "fitnet", "student": "block", "teacher": "block"}, {"name": "kd"}])
    assert list(loss.parameters()) == []
    assert loss.materialize(student, teacher) == ["terms.fitnet.adapter.proj.weight", "terms.fitnet.adapter.proj.bias"]
    assert loss.materialize(student, teacher) == []  # idempotent
    optimizer = torch.optim.SGD(loss.parameters(), lr=0.1)
    before = loss.terms["fitnet"].adapter.proj.weight.detach().clone()
    loss(student, teacher, batch)[0].backward()
    optimizer.step()
    assert not torch.equal(before, loss.terms["fitnet"].adapter.proj.weight)
