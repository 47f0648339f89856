"""Several teachers: weighting math, confidence, feature routing, and distill with two architectures."""

from __future__ import annotations

import math

import pytest
import torch

from slimkit.distillation import DistillationLoss, DistillConfig, run_distillation
from slimkit.distillation.losses import Outputs
from slimkit.distillation.multi_teacher import (
    TeacherEnsemble,
    combine_logits,
    split_teacher_key,
    teacher_weights,
)
from slimkit.errors import ConfigError

from .conftest import tiny_cnn

A = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # sure of sample 0, unsure of sample 1
B = torch.tensor([[0.0, 0.0, 0.0], [0.0, 6.0, 0.0]])  # the other way round


def test_mean_and_fixed_weights():
    assert teacher_weights([A, B]).tolist() == [[0.5, 0.5], [0.5, 0.5]]
    w = teacher_weights([A, B], "weighted", [1.0, 3.0])
    assert w.tolist() == [[0.25, 0.75], [0.25, 0.75]]
    torch.testing.assert_close(combine_logits([A, B], w), 0.25 * A + 0.75 * B)
    with pytest.raises(ConfigError, match="1 entries for 2 teachers"):
        teacher_weights([A, B], "weighted", [1.0])


def test_confidence_weights_are_a_softmax_of_negative_entropy():
    w = teacher_weights([A, B], "confidence")

    def neg_entropy(z):
        p = z.softmax(1)
        return (p * p.log()).sum(1)

    expected = torch.stack([neg_entropy(A), neg_entropy(B)], 1).softmax(1)
    torch.testing.assert_close(w, expected)
    assert w[0, 0] > 0.5 > w[1, 0]  # each sample prefers the teacher that is sure of it
    sharp = teacher_weights([A, B], "confidence", temperature=0.05)
    assert sharp[0, 0] > 0.99 and sharp[1, 1] > 0.99
    maxprob = teacher_weights([A, B], "confidence", confidence="maxprob")
    p_a, p_b = A.softmax(1).max(1).values, B.softmax(1).max(1).values
    assert maxprob[0, 0].item() == pytest.approx(1 / (1 + math.exp(p_b[0] - p_a[0])))


def test_confident_teacher_dominates_the_combined_logits():
    out = TeacherEnsemble(2, weighting="confidence", temperature=0.05)([Outputs(A), Outputs(B)])
    assert out.logits.argmax(1).tolist() == [0, 1]
    torch.testing.assert_close(out.logits[0], A[0], atol=0.05, rtol=0)


def test_feature_keys_route_to_their_teacher():
    assert split_teacher_key("1/features.0", 2) == (1, "features.0")
    with pytest.raises(ConfigError, match="there are 2 teacher"):
        split_teacher_key("2/features.0", 2)
    ens = TeacherEnsemble(2, ["features.0", "1/features.3"])
    assert ens.paths(0) == ["features.0"] and ens.paths(1) == ["features.3"]
    a = Outputs(A, {"features.0": torch.ones(2, 1)})
    b = Outputs(B, {"features.3": torch.zeros(2, 5)})
    assert {k: tuple(v.shape) for k, v in ens([a, b]).features.items()} == {"features.0": (2, 1), "1/features.3": (2, 5)}


def test_distillation_loss_reads_features_of_each_teacher(loaders):
    t0 = tiny_cnn(1).eval().requires_grad_(False)
    t1 = tiny_cnn(2, channels=[6, 6, 12], hidden=0).eval().requires_grad_(False)  # another architecture
    losses = [{"name": "kd"}, {"name": "at", "student": "features.1", "teacher": "1/features.2"}]
    student = tiny_cnn()
    x, y = next(iter(loaders[0]))
    with DistillationLoss(student, [t0, t1], losses, weighting="confidence") as loss:
        value, logs = loss(student(x), (x, y))
    assert value.requires_grad and {"kd", "at", "teacher0_weight", "teacher1_weight"} <= set(logs)
    assert logs["teacher0_weight"] + logs["teacher1_weight"] == pytest.approx(1.0)


@pytest.mark.parametrize("weighting", ["mean", "confidence"])
def test_two_teachers_cached_or_online_train_the_same_student(loaders, quick, weighting):
    teachers = [tiny_cnn(1).eval().requires_grad_(False),
                tiny_cnn(2, channels=[6, 6, 12], hidden=0).eval().requires_grad_(False)]
    results = []
    for cache in ("off", "memory"):
        student = tiny_cnn()
        config = DistillConfig(train=quick, cache_teacher=cache, teacher_weighting=weighting)
        result = run_distillation(student, teachers, loaders[0], config)
        results.append((result, student))
    (online, s_online), (cached, s_cached) = results
    assert (online.cache, cached.cache) == ("off", "memory")
    assert online.history[0]["train_loss"] == pytest.approx(cached.history[0]["train_loss"], rel=1e-5)
    for p, q in zip(s_online.parameters(), s_cached.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_weights_must_match_the_teachers(loaders, quick):
    config = DistillConfig(train=quick, teacher_weighting="weighted", teacher_weights=[1.0, 2.0, 3.0])
    with pytest.raises(ConfigError, match="3 entries for 2 teachers"):
        run_distillation(tiny_cnn(), [tiny_cnn(k).requires_grad_(False).eval() for k in (1, 2)], loaders[0], config)
