import json

import numpy as np
import torch

from slimkit.dynamic import EarlyExit, OnnxEarlyExit, export_exits, make_dynamic
from slimkit.train import TrainConfig


def test_onnx_segments_and_runner_take_the_same_exits(trained, loaders, tmp_path):
    # margin 0: the tiny validation split has a wide standard error, and the test is about the runner
    net = make_dynamic(trained, EarlyExit(exits=["features.1"], train=TrainConfig(epochs=1, progress=False),
                                          accuracy_drop=5.0, margin=0.0), loaders[0], val_loader=loaders[1]).eval()
    x = torch.cat([b[0] for b in loaders[2]])
    folder = export_exits(net, tmp_path / "onnx", x[:2])
    manifest = json.loads((folder / "exits.json").read_text())
    assert manifest["segments"] == ["segment_0.onnx", "segment_1.onnx"] and manifest["heads"] == ["head_0.onnx"]
    runner = OnnxEarlyExit(folder)
    with torch.no_grad():
        expected, taken = net.run(x)
    logits, exits = runner.run(x.numpy())
    assert np.array_equal(exits, taken.numpy()) and len(set(exits.tolist())) == 2  # both exits taken
    np.testing.assert_allclose(logits, expected.numpy(), rtol=1e-4, atol=1e-4)
    _, exit_one = runner.run(x[:1].numpy())
    assert exit_one.tolist() == taken[:1].tolist() and runner(x[:1]).shape == (1, 3)
