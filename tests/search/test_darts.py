"""DARTS: the cell space and supernet, discretization, the dartsnet child (a registered model
that saves and reloads), the FBNet latency term, first- and second-order search, and a search
interrupted mid-way that resumes to the same alphas as an uninterrupted one."""

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from slimkit.errors import CheckpointError, ConfigError
from slimkit.export import load_model, save_model
from slimkit.models import build_model
from slimkit.search.darts import DartsConfig, expected_latency, latency_table, run_darts
from slimkit.search.darts_space import DARTS_FAMILY, OPS, SuperNet, discretize

SMALL = {"widths": [4, 8], "cells": [1, 1], "nodes": 2, "batch_size": 16, "hidden": 8}


@pytest.fixture
def loader(tiny_splits):
    return DataLoader(tiny_splits.train, batch_size=16, shuffle=True)


def run(loader, out, **changes):
    config = DartsConfig(**{**SMALL, "epochs": 2, **changes})
    return run_darts(config, loader, out, in_channels=1, num_classes=3, input_size=8, seed=0)


def test_supernet_mixes_every_operation_and_splits_its_parameters():
    net = SuperNet(widths=[4, 8], cells=[2, 1], nodes=3, input_size=8, num_classes=3)
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 3)
    assert [tuple(a.shape) for a in net.alphas] == [(6, len(OPS)), (6, len(OPS))]
    arch, weights = net.arch_parameters(), net.weight_parameters()
    assert len(arch) == 2 and len(arch) + len(weights) == len(list(net.parameters()))
    loss = net(torch.randn(4, 1, 8, 8)).sum()
    loss.backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in arch)  # alphas are differentiable


def test_discretize_keeps_the_strongest_non_zero_edges():
    alpha = torch.zeros(6, len(OPS))
    alpha[:, OPS.index("zero")] = 10.0  # zero is never chosen, however strong
    alpha[0, OPS.index("conv1x1")] = 3.0
    alpha[3, OPS.index("identity")] = 2.0  # node 3 from node 0
    alpha[5, OPS.index("max_pool3x3")] = 1.0  # node 3 from node 2
    genotype = discretize([alpha], OPS, 3, edges_per_node=2)[0]
    assert genotype[0] == [["conv1x1", 0]]
    assert len(genotype[1]) == 2 and len(genotype[2]) == 2
    assert ["identity", 0] in genotype[2] and ["max_pool3x3", 2] in genotype[2]


def test_dartsnet_is_a_registered_model_that_reloads(tmp_path):
    genotype = [[[["sep_conv3x3", 0]], [["identity", 0], ["conv3x3", 1]]], [[["max_pool3x3", 0]], [["conv1x1", 1]]]]
    net = build_model(DARTS_FAMILY, input_size=8, num_classes=3, widths=[4, 8], cells=[1, 2], genotype=genotype).eval()
    x = torch.randn(2, 1, 8, 8)
    save_model(net, tmp_path / "child")
    torch.testing.assert_close(load_model(tmp_path / "child")(x), net(x))
    with pytest.raises(ConfigError, match="genotype"):
        build_model(DARTS_FAMILY, input_size=8, genotype=[[[["conv5x5", 0]]], [[["conv3x3", 0]]]])
    with pytest.raises(ConfigError, match="genotype"):
        build_model(DARTS_FAMILY, input_size=8, genotype=[[[["conv3x3", 1]]], [[["conv3x3", 0]]]])  # reads itself


def test_latency_table_drives_the_expected_latency():
    config = DartsConfig(**SMALL)
    net = config.supernet(in_channels=1, num_classes=3, input_size=8)
    table = latency_table(config, net, in_channels=1, input_size=8, warmup=0, repeats=3)
    assert [set(t) for t in table["ops"]] == [set(OPS)] * 2 and table["ops"][0]["zero"] == 0.0
    assert table["ops"][0]["conv3x3"] > 0 and table["fixed_ms"] > 0
    with torch.no_grad():  # all weight on one operation: exactly that operation's latency per edge
        for alpha in net.alphas:
            alpha.fill_(-1e4)
            alpha[:, OPS.index("conv3x3")] = 0.0
    expected = table["fixed_ms"] + sum(3 * t["conv3x3"] for t in table["ops"])  # 3 edges per cell, 1 cell per stage
    assert float(expected_latency(net, table, config.cells).detach()) == pytest.approx(expected, rel=1e-5)


def test_latency_aware_search_prefers_cheap_operations(loader, tmp_path):
    plain = run(loader, tmp_path / "plain", epochs=1)
    aware = run(loader, tmp_path / "aware", epochs=1, latency=True, latency_beta=6.0, arch_lr=0.05)
    cost = aware.table["ops"]

    def expected(weights):
        return sum(sum(w * cost[s][op] for w, op in zip(edge, OPS)) for s, stage in enumerate(weights) for edge in stage)

    assert expected(aware.weights) < expected(plain.weights)
    assert "expected_latency_ms" in aware.history[-1]


@pytest.mark.parametrize("order", ["first", "second"])
def test_search_finishes_and_writes_its_result(loader, tmp_path, order):
    result = run(loader, tmp_path / order, order=order)
    assert result.epochs == 2 and result.stopped == "epochs" and len(result.history) == 2
    assert len(result.genotype) == 2 and all(len(stage) == 2 for stage in result.genotype)
    doc = json.loads((tmp_path / order / "result.json").read_text())
    assert doc["genotype"] == result.genotype and doc["config"]["order"] == order
    again = run(loader, tmp_path / order, order=order)  # a finished search is read back, not rerun
    assert again.history == result.history


def test_an_interrupted_search_resumes_to_the_same_alphas(loader, tmp_path):
    whole = run(loader, tmp_path / "whole", epochs=3)

    def stop_in_epoch_two(message):
        if "epoch 2:" in message:
            raise KeyboardInterrupt  # killed before epoch 2's checkpoint

    config = DartsConfig(**{**SMALL, "epochs": 3})
    with pytest.raises(KeyboardInterrupt):
        run_darts(config, loader, tmp_path / "cut", in_channels=1, num_classes=3, input_size=8, seed=0,
                  log=stop_in_epoch_two)
    assert not (tmp_path / "cut" / "result.json").exists() and (tmp_path / "cut" / "last.pt").is_file()
    resumed = run(loader, tmp_path / "cut", epochs=3)
    assert resumed.genotype == whole.genotype
    np.testing.assert_allclose(np.array(resumed.weights), np.array(whole.weights), atol=1e-6)
    assert [h["train_loss"] for h in resumed.history] == pytest.approx([h["train_loss"] for h in whole.history])


def test_a_checkpoint_from_other_settings_is_refused(loader, tmp_path):
    run(loader, tmp_path / "s", epochs=1)
    with pytest.raises(CheckpointError, match="other settings"):
        run(loader, tmp_path / "s", epochs=1, nodes=1)


def test_config_checks():
    with pytest.raises(ConfigError, match="ops"):
        DartsConfig(ops=["conv7x7"])
    with pytest.raises(ConfigError, match="ops"):
        DartsConfig(ops=["zero"])
    with pytest.raises(ConfigError, match="cells"):
        DartsConfig(cells=[1]).supernet(in_channels=1, num_classes=3, input_size=8)


def test_max_skips_caps_identity_edges_per_cell():
    alpha = torch.zeros(3, len(OPS))
    alpha[:, OPS.index("identity")] = 5.0  # every edge prefers a skip
    alpha[0, OPS.index("conv1x1")] = 1.0
    alpha[2, OPS.index("sep_conv3x3")] = 2.0
    free = discretize([alpha], OPS, 2, edges_per_node=2)[0]
    assert sum(e[0] == "identity" for node in free for e in node) == 3
    capped = discretize([alpha.clone()], OPS, 2, edges_per_node=2, max_skips=1)[0]
    names = [e[0] for node in capped for e in node]
    assert names.count("identity") == 1 and "conv1x1" in names and "sep_conv3x3" in names
