import torch
from torch import nn

from slimkit.evaluate import accuracy_under, robustness


def _images(n=60, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    # class c has a brighter channel c, anywhere in the image
    x = torch.rand(n, classes, 6, 6, generator=g) * 0.2
    x[torch.arange(n), y] += torch.rand(n, 6, 6, generator=g)
    return [(x[i : i + 16], y[i : i + 16]) for i in range(0, n, 16)]


def test_global_pooling_net_is_shift_invariant():
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        model[0].bias.zero_()
    r = robustness(model, _images(), noise=(0.1, 0.3), shift=(1, 2))
    assert set(r) == {"clean", "noise_0.1", "noise_0.3", "shift_1", "shift_2"}
    assert r["clean"] == 1.0
    assert r["shift_1"] == r["shift_2"] == r["clean"]
    assert r == robustness(model, _images(), noise=(0.1, 0.3), shift=(1, 2))  # seeded noise


def test_position_template_net_loses_accuracy_under_shift_and_noise():
    # one hot pixel per image; the class is its position; a flatten+identity net reads it
    x = torch.zeros(16, 1, 4, 4)
    x.view(16, -1)[torch.arange(16), torch.arange(16)] = 1.0
    loader = [(x, torch.arange(16))]
    model = nn.Flatten()
    r = robustness(model, loader, noise=(5.0,), shift=1)
    assert r["clean"] == 1.0 and r["shift_1"] == 0.0 and r["noise_5"] < 0.5
    assert accuracy_under(model, loader, lambda t, g: t) == 1.0


class ImageAndScale(nn.Module):
    """An image and a per-sample float scale: only the image is a picture to shift."""

    def forward(self, image, scale):
        return torch.stack([image[:, 0, 0, 0], torch.full_like(scale, 0.5)], 1) * scale.view(-1, 1)


def test_shifts_move_image_inputs_and_leave_other_float_inputs_alone():
    image = torch.zeros(4, 1, 4, 4)
    image[:, 0, 0, 0] = 1.0  # class 0 while unshifted; a shift moves the bright pixel away
    batches = [({"image": image, "scale": torch.ones(4)}, torch.zeros(4, dtype=torch.long))]
    result = robustness(ImageAndScale(), batches, noise=(), shift=1)
    assert result["clean"] == 1.0 and "skipped" not in result
    assert result["shift_1"] == 0.0  # the image moved; the (N,) scale did not break the shift
