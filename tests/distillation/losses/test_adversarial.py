import pytest
import torch
import torch.nn.functional as F

from slimkit.distillation.losses import (
    LOSSES,
    AdversarialLoss,
    KDLoss,
    Outputs,
    WeightedSumLoss,
    build_losses,
    grad_reverse,
    materialize,
)
from slimkit.errors import ConfigError, ModelError
from slimkit.train.runtime import num_threads


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny tensors: a second intra-op thread only adds contention on a shared machine.
    with num_threads(1):
        yield


def value(loss, student, teacher):
    with torch.no_grad():
        return float(loss(student, teacher))


def outputs(seed=0, requires_grad=False):
    torch.manual_seed(seed)
    s = torch.randn(8, 3, requires_grad=requires_grad)
    t = torch.randn(8, 3) * 3
    return Outputs(s), Outputs(t)


def built(**kwargs):
    loss = AdversarialLoss(hidden=8, **kwargs)
    loss.materialize(*outputs())
    return loss


@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_grad_reverse_is_identity_forward_and_flips_gradient(scale):
    w = torch.tensor([1.0, -2.0, 3.0])
    x = torch.tensor([0.5, 1.0, 2.0], requires_grad=True)
    y = grad_reverse(x, scale)
    assert torch.equal(y, x)
    (w * y).sum().backward()
    torch.testing.assert_close(x.grad, -scale * w)


def test_student_gets_reversed_gradient_of_discriminator_bce():
    loss = built(temperature=2.0)
    student, teacher = outputs(requires_grad=True)
    loss(student, teacher).backward()
    reversed_grad = student.logits.grad.clone()
    # The same BCE without reversal: the student's gradient must be its exact negative.
    plain = student.logits.detach().clone().requires_grad_(True)
    d = loss.discriminator
    fake = d(F.softmax(plain / 2.0, dim=1))
    real = d(F.softmax(teacher.logits / 2.0, dim=1))
    bce = F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + F.binary_cross_entropy_with_logits(
        fake, torch.zeros_like(fake)
    )
    bce.backward()
    assert reversed_grad.abs().sum() > 0
    torch.testing.assert_close(reversed_grad, -plain.grad)


def test_discriminator_learns_to_separate_teacher_from_student():
    loss = built()
    student, teacher = outputs()
    before = value(loss, student, teacher)
    opt = torch.optim.SGD(loss.parameters(), lr=0.5)
    for _ in range(30):
        opt.zero_grad()
        loss(student, teacher).backward()
        opt.step()
    after = value(loss, student, teacher)
    assert after < before
    d = loss.discriminator
    real = d(F.softmax(teacher.logits, 1)).mean()
    fake = d(F.softmax(student.logits, 1)).mean()
    assert real > fake  # teacher scored "real", student "fake"


def test_student_step_fools_a_fixed_discriminator():
    loss = built()
    student, teacher = outputs()
    opt = torch.optim.SGD(loss.parameters(), lr=0.5)
    for _ in range(30):  # train the discriminator first
        opt.zero_grad()
        loss(student, teacher).backward()
        opt.step()
    logits = student.logits.clone().requires_grad_(True)
    before = value(loss, Outputs(logits), teacher)
    loss.requires_grad_(False)
    step = torch.optim.SGD([logits], lr=1.0)
    for _ in range(5):
        step.zero_grad()
        loss(Outputs(logits), teacher).backward()
        step.step()
    assert value(loss, Outputs(logits), teacher) > before  # discriminator's loss rises: it is fooled


def test_pooled_features_and_shape_errors():
    loss = AdversarialLoss(hidden=4, student_key="f", teacher_key="g")
    s = Outputs(torch.zeros(2, 3), {"f": torch.randn(2, 6, 4, 4)})
    t = Outputs(torch.zeros(2, 3), {"g": torch.randn(2, 6, 2, 2)})
    assert materialize(loss, s, t) == [
        "discriminator.0.weight", "discriminator.0.bias", "discriminator.2.weight", "discriminator.2.bias"
    ]
    assert loss.discriminator[0].in_features == 6
    assert torch.isfinite(loss(s, t))
    bad = Outputs(torch.zeros(2, 3), {"g": torch.randn(2, 5, 2, 2)})
    with pytest.raises(ModelError, match="student gives 6 values per sample but teacher 5"):
        AdversarialLoss(student_key="f", teacher_key="g").materialize(s, bad)
    with pytest.raises(ConfigError, match="both student_key and teacher_key"):
        AdversarialLoss(student_key="f")
    with pytest.raises(ConfigError, match="hidden"):
        AdversarialLoss(hidden=0)


def test_registered_and_usable_as_a_weighted_term():
    assert LOSSES.get("adversarial") is AdversarialLoss
    loss = build_losses([{"name": "kd", "weight": 0.9}, {"name": "adversarial", "weight": 0.1, "hidden": 8}])
    student, teacher = outputs(requires_grad=True)
    assert materialize(loss, student, teacher)  # the discriminator exists before an optimizer is built
    total, terms = loss(student, teacher)
    assert set(terms) == {"kd", "adversarial"}
    assert float(total.detach()) == pytest.approx(0.9 * terms["kd"] + 0.1 * terms["adversarial"], rel=1e-5)
    assert isinstance(loss.terms["kd"], KDLoss)


def test_state_dict_rebuilds_discriminator_in_a_fresh_loss():
    loss = built()
    fresh = AdversarialLoss(hidden=8)
    fresh.load_state_dict(loss.state_dict())
    student, teacher = outputs()
    assert value(fresh, student, teacher) == pytest.approx(value(loss, student, teacher))


def test_lazy_build_in_a_training_step_warns():
    loss = AdversarialLoss(hidden=4)
    with pytest.warns(UserWarning, match="materialize"):
        loss(*outputs(requires_grad=True))
    wrapped = WeightedSumLoss({"adv": (1.0, AdversarialLoss(hidden=4))})
    with torch.no_grad():
        wrapped(*outputs())  # no warning needed outside training


def test_distill_optimizes_the_discriminator(tiny_splits):
    from torch.utils.data import DataLoader

    from slimkit.distillation.config import DistillConfig
    from slimkit.distillation.offline import run_distillation
    from slimkit.models import build_model
    from slimkit.train import Callback, TrainConfig

    class Watch(Callback):
        def on_fit_start(self, trainer):
            self.adv = next(m for m in trainer.loss_fn.modules() if isinstance(m, AdversarialLoss))
            self.before = [p.detach().clone() for p in self.adv.parameters()]
            self.in_optimizer = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}

    torch.manual_seed(0)
    teacher = build_model("mlp", hidden=[16], input_size=8, num_classes=3).eval().requires_grad_(False)
    student = build_model("mlp", hidden=[8], input_size=8, num_classes=3)
    specs = [{"name": "kd", "weight": 0.9}, {"name": "adversarial", "weight": 0.1, "hidden": 8}]
    watch = Watch()
    config = DistillConfig(losses=specs, train=TrainConfig(epochs=1, progress=False, threads=1))
    result = run_distillation(student, teacher, DataLoader(tiny_splits.train, batch_size=32), config, callbacks=[watch])
    params = list(watch.adv.parameters())
    assert params and all(id(p) in watch.in_optimizer for p in params)
    assert all(not torch.equal(p, b) for p, b in zip(params, watch.before))
    assert "train_adversarial" in result.history[0]
