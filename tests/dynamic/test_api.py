import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from slimkit.dynamic import ChannelGating, EarlyExit, EarlyExitNet, FBSConv, make_dynamic
from slimkit.errors import ConfigError
from slimkit.export import load_model, report_of, save_model
from slimkit.train import TrainConfig

QUICK = TrainConfig(epochs=2, progress=False)
ROOT = Path(__file__).resolve().parents[2]


def test_early_exit_trains_heads_calibrates_and_records(trained, loaders):
    before = copy.deepcopy(trained.state_dict())
    net = make_dynamic(trained, EarlyExit(exits=["features.?"], train=QUICK, accuracy_drop=2.0), loaders[0],
                       val_loader=loaders[1])
    assert isinstance(net, EarlyExitNet) and net.layers == ["features.0", "features.1", "features.2"]
    assert all(torch.equal(before[k], v) for k, v in trained.state_dict().items())  # the input is left alone
    done = report_of(net, "make_dynamic")
    assert done["technique"] == "early_exit" and done["calibrated_on"] == "val_loader"
    calibration = done["calibration"]
    assert calibration["met"] and calibration["drop_points"] <= 2.0 and len(calibration["thresholds"]) == 3
    assert [c["kind"] for c in net.slimkit_history][-2:] == ["early_exit", "report"]


def test_frozen_backbone_keeps_the_network_exactly(trained, loaders):
    net = make_dynamic(trained, EarlyExit(exits=["features.0"], train=QUICK, train_backbone=False), loaders[0],
                       val_loader=loaders[1])
    for key, value in trained.state_dict().items():
        assert torch.equal(net.model.state_dict()[key], value), key  # BatchNorm statistics too
    assert all(p.requires_grad for p in net.model.parameters())


def test_byot_training_fine_tunes_the_network_too(trained, loaders):
    net = make_dynamic(trained, EarlyExit(exits=["features.0"], head="linear", train=QUICK, train_backbone=True),
                       loaders[0], val_loader=loaders[1])
    assert not torch.equal(net.model.features[0].conv.weight, trained.features[0].conv.weight)
    assert net.heads[0].fc.in_features == 4  # a linear head: global average pool of 4 channels


def test_a_saved_early_exit_model_reloads_in_a_fresh_process(trained, loaders, tmp_path):
    net = make_dynamic(trained, EarlyExit(exits=["features.0", "features.1"], train=QUICK, head="conv",
                                          target_macs=0.7), loaders[0], val_loader=loaders[1])
    save_model(net, tmp_path / "ee")
    x = torch.cat([b[0] for b in loaders[2]])
    with torch.no_grad():
        expected, taken = net.eval().run(x)
    torch.save({"x": x, "logits": expected, "exits": taken}, tmp_path / "expected.pt")
    code = (f"import torch; from slimkit.export import load_model; m = load_model({str(tmp_path / 'ee')!r}); "
            f"e = torch.load({str(tmp_path / 'expected.pt')!r}, weights_only=True); l, t = m.run(e['x']); "
            "assert type(m).__name__ == 'EarlyExitNet', type(m); assert torch.equal(t, e['exits']); "
            "assert torch.allclose(l, e['logits'], atol=1e-6); print('ok')")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert done.stdout.strip() == "ok", done.stderr[-1500:]
    back = load_model(tmp_path / "ee")
    assert torch.equal(back.thresholds, net.thresholds)


def test_mixer_token_features_get_a_clear_error(tiny_splits):
    import zoo
    from torch.utils.data import DataLoader

    model = zoo.build("mixer", input_size=8, num_classes=3)
    loader = DataLoader(tiny_splits.train, batch_size=16)
    with pytest.raises(Exception, match="AuxHead reads"):
        make_dynamic(model, EarlyExit(exits=["blocks.0"], train=QUICK), loader)


def test_channel_gating_skips_channels_exactly_and_reloads(trained, loaders, tmp_path):
    gated = make_dynamic(trained, ChannelGating(density=0.5, recover={"epochs": 1}), loaders[0],
                         val_loader=loaders[1]).eval()
    convs = [m for m in gated.modules() if isinstance(m, FBSConv)]
    assert len(convs) == 3 and all(c.keep == c.conv.out_channels // 2 for c in convs)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in gated.features.modules() if not _inside_gate(gated, m))
    x = torch.cat([b[0] for b in loaders[2]])
    with torch.no_grad():
        skipped = gated(x)
        alone = torch.cat([gated(x[i:i + 1]) for i in range(len(x))])
        for conv in convs:
            conv.skip = False
        dense = gated(x)
    torch.testing.assert_close(skipped, dense, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(alone, dense, rtol=1e-4, atol=1e-5)
    done = report_of(gated, "make_dynamic")
    assert done["technique"] == "channel_gating" and done["gated_layers"] == 3
    save_model(gated, tmp_path / "g")
    with torch.no_grad():
        torch.testing.assert_close(load_model(tmp_path / "g")(x), dense, rtol=1e-4, atol=1e-5)


def _inside_gate(model: nn.Module, module: nn.Module) -> bool:
    return any(module is c.bn for c in model.modules() if isinstance(c, FBSConv))


def test_gated_convs_really_run_fewer_macs(trained, loaders):
    from slimkit.evaluate import count_macs

    gated = make_dynamic(trained, ChannelGating(density=0.25, recover={"epochs": 1}), loaders[0]).eval()
    x = next(iter(loaders[2]))[0][:1]
    full, few = count_macs(trained, x), count_macs(gated, x)
    assert few < 0.6 * full  # the convs' MACs drop with the kept channels (in and out), predictors included


def test_wrong_config_and_missing_loader_are_refused(trained):
    with pytest.raises(ConfigError, match="takes a config object"):
        make_dynamic(trained, {"type": "EarlyExit"})
    with pytest.raises(ConfigError, match="needs the training loader"):
        make_dynamic(trained, EarlyExit())
    with pytest.raises(ConfigError, match="one budget"):
        EarlyExit(accuracy_drop=1.0, target_macs=0.5)


def test_config_round_trips_through_plain_data():
    config = EarlyExit(exits=["features.0"], head="conv", criterion="entropy", target_macs=0.5)
    assert EarlyExit.from_dict(json.loads(json.dumps(config.to_dict()))) == config
