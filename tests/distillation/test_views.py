"""Input views for cross-modal distillation: shapes, masks, specs, and a student trained on its view."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slimkit.distillation import VIEWS, DistillConfig, Viewed, build_view, run_distillation
from slimkit.distillation.views import Downsample, Mask
from slimkit.errors import ConfigError, DataError, ModelError

from .conftest import tiny_cnn

SPECS = {"identity": {"name": "identity"}, "downsample": {"name": "downsample", "size": 4},
         "mask": {"name": "mask", "fraction": 0.25, "patch": 2}}


def test_every_registered_view_has_a_spec_here():
    assert sorted(SPECS) == VIEWS.names()


@pytest.mark.parametrize("name", VIEWS.names())
def test_views_round_trip_their_spec_and_keep_batch_and_channels(name):
    view = build_view(SPECS[name])
    assert build_view(view.spec()).spec() == view.spec()
    out = view(torch.randn(5, 2, 8, 8))
    assert out.shape[:2] == (5, 2) and out.shape[-1] == view.output_size(8)


def test_downsample_averages_areas():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert Downsample(size=2)(x).tolist() == [[[[2.5, 4.5], [10.5, 12.5]]]]
    assert Downsample(size=8)(x).shape == (1, 1, 8, 8)  # grows by interpolation


def test_mask_hides_the_fraction_fixed_or_per_sample():
    x = torch.ones(4, 1, 8, 8)
    fixed = Mask(fraction=0.25, patch=2)
    out = fixed(x)
    assert (out == 0).float().mean().item() == 0.25
    assert all(torch.equal(out[0], o) for o in out)  # the same squares for every sample
    assert torch.equal(out, Mask(fraction=0.25, patch=2)(x))  # and across calls
    rand = Mask(fraction=0.25, patch=2, random=True)
    torch.manual_seed(0)
    varied = rand(x)
    assert (varied == 0).float().mean().item() == 0.25
    assert not all(torch.equal(varied[0], o) for o in varied)
    assert rand.eval()(x).equal(out) and not rand.deterministic


def test_bad_view_specs_say_what_is_wrong():
    with pytest.raises(ConfigError, match="Did you mean 'mask'"):
        build_view({"name": "masc"})
    with pytest.raises(ConfigError, match="unknown argument 'sise'. Did you mean 'size'"):
        build_view({"name": "downsample", "sise": 4})
    with pytest.raises(ConfigError, match="fraction must be in"):
        build_view({"name": "mask", "fraction": 1.5})
    with pytest.raises(ConfigError, match="with a 'name'"):
        build_view("downsample")
    with pytest.raises(DataError, match="image batches"):
        Downsample(size=2)(torch.zeros(3, 4))


def test_student_trains_on_its_downsampled_view(trained_teacher, loaders, quick):
    student = tiny_cnn(input_size=4, channels=[4])
    seen = []
    student.register_forward_pre_hook(lambda _, args: seen.append(tuple(args[0].shape[-2:])))
    before = [p.detach().clone() for p in student.parameters()]
    config = DistillConfig(train=quick, student_view={"name": "downsample", "size": 4})
    result = run_distillation(student, trained_teacher, loaders[0], config, val_loader=loaders[1])
    assert set(seen) == {(4, 4)}  # training and validation both fed the view
    assert result.history[0]["val_acc"] is not None and result.cache == "memory"
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters()))


def test_teacher_view_is_used_and_a_random_one_is_not_cached(loaders, quick):
    teacher = tiny_cnn(1).eval().requires_grad_(False)
    seen = []
    teacher.register_forward_pre_hook(lambda _, args: seen.append(float((args[0] == 0).float().mean())))
    random_mask = {"name": "mask", "fraction": 0.5, "random": True}
    result = run_distillation(tiny_cnn(), teacher, loaders[0], DistillConfig(train=quick, teacher_view=random_mask))
    assert result.cache == "off" and min(seen) >= 0.5
    with pytest.raises(ConfigError, match="teacher view .* is random"):
        run_distillation(tiny_cnn(), teacher, loaders[0], DistillConfig(train=quick, teacher_view=random_mask,
                                                               cache_teacher="memory"))


def test_student_that_cannot_take_its_view_gets_a_clear_error(trained_teacher, loaders, quick):
    config = DistillConfig(train=quick, student_view={"name": "downsample", "size": 4})
    with pytest.raises(ModelError, match="student cannot take its input of shape \\(1, 4, 4\\)"):
        run_distillation(tiny_cnn(), trained_teacher, loaders[0], config)  # built for 8x8


def test_viewed_exposes_the_model():
    net = nn.Flatten()
    wrapped = Viewed(net, Downsample(size=2))
    assert wrapped.model is net and wrapped(torch.ones(1, 1, 4, 4)).shape == (1, 4)
