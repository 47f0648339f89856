import pytest
import torch
from torch import nn

from slimkit.distillation.hooks import FeatureCapture
from slimkit.errors import ConfigError, ModelError


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5))
        self.classifier = nn.Linear(5, 3)

    def forward(self, x):
        return self.classifier(self.features(x))


class TupleOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(4, 3, batch_first=True)

    def forward(self, x):
        out, _ = self.rnn(x)
        return out


def no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_hooks_with_kwargs for m in model.modules())


def test_captures_outputs_by_path():
    torch.manual_seed(0)
    net, x = Net(), torch.randn(2, 4)
    with FeatureCapture(net, ["features.0", "features.2"]) as capture:
        net(x)
        assert set(capture.features) == {"features.0", "features.2"}
        torch.testing.assert_close(capture["features.0"], net.features[0](x))
        torch.testing.assert_close(capture["features.2"], net.features(x))


def test_input_mode_and_per_path_suffix():
    torch.manual_seed(0)
    net, x = Net(), torch.randn(2, 4)
    capture = FeatureCapture(net, ["classifier", "features.0:output"], mode="input")
    net(x)
    torch.testing.assert_close(capture["classifier"], net.features(x))  # classifier's input
    assert capture["features.0:output"].shape == (2, 6)
    capture.remove()


def test_captured_student_features_keep_gradients():
    net = Net()
    with FeatureCapture(net, ["features.2"]) as capture:
        net(torch.randn(2, 4))
        capture["features.2"].sum().backward()
    assert net.features[0].weight.grad is not None


def test_tuple_outputs_keep_the_first_tensor():
    net = TupleOut()
    with FeatureCapture(net, ["rnn"]) as capture:
        out = net(torch.randn(2, 5, 4))
        torch.testing.assert_close(capture["rnn"], out)


def test_unknown_path_suggests_nearest_names_and_registers_nothing():
    net = Net()
    with pytest.raises(ConfigError, match=r"Net has no module 'featurs.2'.*Did you mean 'features.2'") as info:
        FeatureCapture(net, ["features.0", "featurs.2"])
    assert "features.2" in info.value.hint
    assert no_hooks(net)  # the valid first path was not hooked either


def test_bad_arguments():
    with pytest.raises(ConfigError, match="list of module paths"):
        FeatureCapture(Net(), "features.0")
    with pytest.raises(ConfigError, match="mode must be"):
        FeatureCapture(Net(), ["features.0"], mode="both")


def test_remove_leaves_no_hooks_and_is_idempotent():
    net = Net()
    capture = FeatureCapture(net, ["features.0", "classifier", "classifier:input"])
    assert not no_hooks(net) and capture.active
    capture.remove()
    capture.remove()
    assert no_hooks(net) and not capture.active
    net(torch.randn(1, 4))
    assert capture.features == {}


def test_context_manager_removes_hooks_even_on_error():
    net = Net()
    with pytest.raises(RuntimeError), FeatureCapture(net, ["features.0"]):
        raise RuntimeError("boom")
    assert no_hooks(net)


def test_clear_take_and_missing_record():
    net = Net()
    with FeatureCapture(net, ["features.0"]) as capture:
        with pytest.raises(ModelError, match="nothing recorded for 'features.0'"):
            capture["features.0"]
        with pytest.raises(ConfigError, match="not one of the captured paths"):
            capture["classifier"]
        net(torch.randn(3, 4))
        taken = capture.take()
        assert taken["features.0"].shape == (3, 6) and capture.features == {}
        net(torch.randn(3, 4))
        capture.clear()
        assert "features.0" not in capture


def test_duplicate_paths_hook_once():
    net = Net()
    with FeatureCapture(net, ["features.0", "features.0"]) as capture:
        assert capture.paths == ("features.0",)
        assert len(net.features[0]._forward_hooks) == 1


def test_captured_features_feed_losses_end_to_end():
    from slimkit.distillation.losses import (
        Outputs,
        build_losses,
        materialize,
        required_features,
    )

    torch.manual_seed(0)
    student = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 8 * 8, 3))
    teacher = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    loss = build_losses(
        [
            {"name": "kd", "weight": 0.9},
            {"name": "ce", "weight": 0.1},
            {"name": "fitnet", "student": "1", "teacher": "1"},
            {"name": "at", "student": "1", "teacher": "1"},
            {"name": "rkd", "student": "3:input", "teacher": "3:input"},
        ]
    )
    s_paths, t_paths = required_features(loss)
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    with FeatureCapture(student, s_paths) as s_cap, FeatureCapture(teacher, t_paths) as t_cap:
        with torch.no_grad():
            t_out = Outputs(teacher(x), t_cap.take())
        s_out = Outputs(student(x), s_cap.take())
        assert s_out.features["1"].shape == (4, 2, 8, 8) and t_out.features["1"].shape == (4, 4, 4, 4)
        materialize(loss, s_out, t_out)
        total, terms = loss(s_out, t_out, (x, y))
        total.backward()
    assert set(terms) == {"kd", "ce", "fitnet", "at", "rkd"}
    assert student[0].weight.grad is not None and teacher[0].weight.grad is None
    assert no_hooks(student) and no_hooks(teacher)
