import copy
import math

import pytest
import torch
import zoo

from slimkit.distillation.self_aux import AuxHead
from slimkit.dynamic import EarlyExitNet, Segmented, confidence
from slimkit.errors import ModelError
from slimkit.models import build_model

LAYERS = ["features.0", "features.1"]


def exits_net(seed: int = 0) -> EarlyExitNet:
    torch.manual_seed(seed)
    net = build_model("cnn", channels=[4, 8, 16], hidden=8, input_size=8, num_classes=3).eval()
    feats = Segmented(net, LAYERS).run(torch.zeros(2, 1, 8, 8))
    return EarlyExitNet(net, LAYERS, [AuxHead(feats[0], 3), AuxHead(feats[1], 3)]).eval()


def test_confidence_criteria():
    z = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    maxprob, entropy = confidence(z), confidence(z, "entropy")
    assert maxprob[0] > 0.9 and maxprob[1] == pytest.approx(1 / 3)
    assert entropy[0] > 0.5 and entropy[1] == pytest.approx(0.0, abs=1e-6)


def test_disabled_exits_give_the_plain_network():
    net = exits_net()
    x = torch.randn(6, 1, 8, 8)
    with torch.no_grad():
        logits, taken = net.run(x)
        torch.testing.assert_close(logits, net.model(x))
    assert taken.tolist() == [2] * 6 and net.enabled() == [False, False]


def test_each_sample_takes_its_first_confident_exit_batched_and_alone():
    net = exits_net()
    x = torch.randn(32, 1, 8, 8)
    with torch.no_grad():
        every = net.all_logits(x)
        scores = [confidence(z) for z in every[:-1]]
        net.set_thresholds([float(scores[0].median()), float(scores[1].median())])
        logits, taken = net.run(x)
        expected = torch.where(scores[0] >= net.thresholds[0], 0, torch.where(scores[1] >= net.thresholds[1], 1, 2))
        assert torch.equal(taken, expected) and len(set(taken.tolist())) == 3
        for i in range(len(x)):
            torch.testing.assert_close(logits[i], every[int(taken[i])][i])
            alone, exit_alone = net.run(x[i:i + 1])
            assert int(exit_alone) == int(taken[i])
            torch.testing.assert_close(alone[0], logits[i], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(net(x), logits)


def test_a_batch_whose_samples_all_leave_stops_early():
    net = exits_net()
    net.set_thresholds([0.0, math.inf])
    called = []
    net.model.features[1].register_forward_hook(lambda *a: called.append(1))
    with torch.no_grad():
        _, taken = net.run(torch.randn(5, 1, 8, 8))
    assert taken.tolist() == [0] * 5 and not called  # the later layers never ran


def test_training_mode_and_static_flag_run_the_plain_network():
    net = exits_net()
    net.set_thresholds([0.0, 0.0])
    x = torch.randn(4, 1, 8, 8)
    net.train()
    assert torch.equal(net(x), net.model(x))
    net.eval()
    net.dynamic = False
    with torch.no_grad():
        torch.testing.assert_close(net(x), net.model(x))


def test_copies_retrace_their_own_segments_and_state_has_no_duplicates():
    net = exits_net()
    net.set_thresholds([0.6, 0.6])
    twin = copy.deepcopy(net)
    with torch.no_grad():
        twin.model.features[0].conv.weight.mul_(2.0)  # the copy's segments must use the copy's weights
        x = torch.randn(4, 1, 8, 8)
        assert not torch.allclose(twin.all_logits(x)[-1], net.all_logits(x)[-1])
        torch.testing.assert_close(twin.all_logits(x)[-1], twin.model(x))
    keys = list(net.state_dict())
    assert "thresholds" in keys and not any(k.startswith("_cut") for k in keys)
    assert len(keys) == len(net.model.state_dict()) + len(net.heads.state_dict()) + 1


def test_costs_are_per_segment_and_per_head():
    net = exits_net()
    costs = net.costs(torch.zeros(1, 1, 8, 8))
    from slimkit.evaluate import count_macs

    assert sum(costs["segments"]) == count_macs(net.model, torch.zeros(1, 1, 8, 8))
    assert len(costs["heads"]) == 2 and all(c > 0 for c in costs["heads"])


def test_dict_input_models_exit_through_the_io_contract():
    torch.manual_seed(0)
    model = zoo.build("dict_io", input_size=8, num_classes=3).eval()
    feats = Segmented(model, ["body.0"]).segments[0](image=torch.zeros(2, 1, 8, 8), scale=torch.ones(2))
    net = EarlyExitNet(model, ["body.0"], [AuxHead(feats, 3)]).eval()
    net.set_thresholds([0.0])
    logits, taken = net.run(image=torch.randn(3, 1, 8, 8), scale=torch.ones(3))
    assert logits.shape == (3, 3) and taken.tolist() == [0, 0, 0]


def test_mismatched_heads_are_refused():
    net = build_model("cnn", channels=[4, 8], hidden=8, input_size=8, num_classes=3)
    with pytest.raises(ModelError, match="one head per exit layer"):
        EarlyExitNet(net, ["features.0"], [])


def test_pool_heads_keep_a_small_grid_of_the_feature_map():
    from torch import nn

    head = AuxHead(torch.zeros(2, 8, 14, 14), 3, kind="pool")
    assert head.fc.in_features == 8 * 7 * 7 and head(torch.randn(5, 8, 14, 14)).shape == (5, 3)
    small = AuxHead(torch.zeros(2, 8, 4, 4), 3, kind="pool")  # already small: kept whole, no pooling op
    assert small.fc.in_features == 8 * 4 * 4 and not any(isinstance(m, nn.AdaptiveAvgPool2d) for m in small.body)
    net = exits_net()
    net.heads[0] = AuxHead(torch.zeros(2, 4, 4, 4), 3, kind="pool")
    net.set_thresholds([0.0, math.inf])
    x = torch.randn(1, 1, 8, 8)
    with torch.no_grad():  # the batch-1 path runs the head as a plain function: the same logits
        torch.testing.assert_close(net(x), net.heads[0](net.segments[0](x)))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.trace's own deprecation notice
def test_tracing_the_whole_model_is_refused_with_the_way_to_export():
    from slimkit.errors import ExportError
    from slimkit.export import export_onnx

    net = exits_net()
    net.set_thresholds([0.5, 0.5])
    with pytest.raises(ModelError, match="export_exits"):
        torch.jit.trace(net, torch.zeros(1, 1, 8, 8))
    with pytest.raises(ExportError, match="export_exits"):
        export_onnx(net, "/nonexistent/never-written.onnx", torch.zeros(2, 1, 8, 8))
