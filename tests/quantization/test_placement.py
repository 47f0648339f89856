"""Each convolution is timed alone in float and int8 in ONNX Runtime; the slower-in-int8 ones are named."""

import onnx
import onnxruntime as ort
import torch
from torch import nn

from slimkit.quantization.placement import _conv_graphs, conv_timings, slow_int8_layers


def test_one_conv_graphs_compute_the_conv():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8).eval()
    x = torch.randn(2, 8, 6, 6)
    float_graph, int8_graph = _conv_graphs(conv, (8, 6, 6))
    ops = [n.op_type for n in onnx.load_from_string(int8_graph).graph.node]
    assert ops.count("QuantizeLinear") == 2 and ops.count("Conv") == 1
    out = [ort.InferenceSession(g).run(None, {"x": x.numpy()})[0] for g in (float_graph, int8_graph)]
    assert torch.allclose(torch.from_numpy(out[0]), conv(x).detach(), atol=1e-5)
    assert out[1].shape == out[0].shape  # int8 with arbitrary activation scales: timing only


def test_conv_timings_cover_every_conv_at_every_batch():
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                          nn.Conv2d(8, 16, 1), nn.Flatten(), nn.Linear(16 * 8 * 8, 3)).eval()
    timings = conv_timings(model, torch.zeros(2, 1, 8, 8), ["0", "2", "3", "5"], batch_sizes=[1, 8], repeats=2)
    assert set(timings) == {"0", "2", "3"}  # the Linear is not a convolution
    assert all(set(rows) == {1, 8} and all(v > 0 for r in rows.values() for v in r.values()) for rows in timings.values())


def test_slow_layers_are_judged_at_the_largest_batch():
    timings = {"stem": {1: {"float_ms": 0.01, "int8_ms": 0.005}, 256: {"float_ms": 10.0, "int8_ms": 30.0}},
               "pw": {1: {"float_ms": 0.01, "int8_ms": 0.02}, 256: {"float_ms": 20.0, "int8_ms": 5.0}}}
    assert slow_int8_layers(timings) == ["stem"]
