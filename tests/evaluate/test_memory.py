import torch
from torch import nn

from slimkit.evaluate import memory, peak_memory, state_bytes


def test_state_bytes_counts_params_and_buffers_once():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    # 20 + 8 params, 4 + 4 running stats (float32) + num_batches_tracked (int64)
    assert state_bytes(model) == (20 + 8 + 8) * 4 + 8


def test_profiler_peak_covers_weights_input_and_output():
    model = nn.Linear(10, 1000)
    x = torch.zeros(64, 10)
    r = peak_memory(model, x)
    assert r["method"] == "profiler"
    assert r["transient_bytes"] >= 64 * 1000 * 4  # the output alone
    assert r["peak_bytes"] == state_bytes(model) + x.numel() * 4 + r["transient_bytes"]


def test_falls_back_to_labelled_estimate(monkeypatch):
    def busy(run):
        raise RuntimeError("profiler already running")

    monkeypatch.setattr(memory, "_profiler_transient", busy)
    model = nn.Sequential(nn.Linear(10, 50), nn.ReLU(), nn.Linear(50, 2))
    r = peak_memory(model, torch.zeros(8, 10))
    assert r["method"] == "estimated" and r["transient_bytes"] == 8 * 50 * 4
