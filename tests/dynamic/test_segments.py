import pytest
import torch
import zoo
from torch import nn

from slimkit.dynamic import Segmented, cut_points, resolve_layers
from slimkit.errors import ConfigError, ModelError
from slimkit.models import build_model


def cnn() -> nn.Module:
    torch.manual_seed(0)
    return build_model("cnn", channels=[4, 8, 16], hidden=8, input_size=8, num_classes=3).eval()


def test_segments_compose_to_the_model_and_share_its_parameters():
    net = cnn()
    cut = Segmented(net, ["features.0", "features.1"])
    x = torch.randn(3, 1, 8, 8)
    outs = cut.run(x)
    assert len(cut) == 3 and outs[0].shape == (3, 4, 4, 4) and outs[1].shape == (3, 8, 2, 2)
    torch.testing.assert_close(outs[-1], net(x))
    ids = {id(p) for s in cut.segments for p in s.parameters()}
    assert ids == {id(p) for p in net.parameters()}  # nothing copied


def test_globs_keep_whole_blocks_and_exact_paths_must_be_cut_points():
    net = cnn()
    assert resolve_layers(net, ["features.*"]) == ["features.0", "features.1", "features.2"]
    assert resolve_layers(net, ["features.1", "features.0"]) == ["features.0", "features.1"]
    resnet = build_model("resnet", input_size=8, num_classes=3)
    assert resolve_layers(resnet, ["features.1.?"]) == ["features.1.0", "features.1.1", "features.1.2"]
    with pytest.raises(ConfigError, match="not a cut point"):
        resolve_layers(resnet, ["features.1.0.conv1"])  # inside a residual block: the shortcut crosses it
    with pytest.raises(ConfigError, match="matches no module"):
        resolve_layers(net, ["feature.0"])


@pytest.mark.parametrize(("name", "layers"), [("se", ["stage1", "stage2"]), ("resnet_proj", ["stem", "layer1"]),
                                              ("branchy", ["stem", "plain"])])
def test_zoo_models_cut_at_their_blocks(name, layers):
    torch.manual_seed(0)
    model = zoo.build(name, input_size=8, num_classes=3).eval()
    if name == "branchy":  # the other branches read the stem's output too: 'plain' is no cut point
        assert cut_points(model, layers) == ["stem"]
        layers = ["stem"]
    cut = Segmented(model, layers)
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(cut.run(x)[-1], model(x))


def test_dict_inputs_reach_the_first_segment():
    torch.manual_seed(0)
    model = zoo.build("dict_io", input_size=8, num_classes=3).eval()
    cut = Segmented(model, ["body.0"])
    image, scale = torch.randn(2, 1, 8, 8), torch.ones(2)
    out = cut.segments[1](cut.segments[0](image=image, scale=scale))
    torch.testing.assert_close(out["logits"], model(image=image, scale=scale)["logits"])


def test_untraceable_models_fail_with_a_clear_error():
    class Branching(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)

        def forward(self, x):
            return self.b(self.a(x)) if x.sum() > 0 else x

    with pytest.raises(ModelError, match="cannot trace"):
        Segmented(Branching(), ["a"])
