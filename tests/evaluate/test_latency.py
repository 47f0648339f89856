import pytest
import torch
from torch import nn

from slimkit.errors import ConfigError
from slimkit.evaluate import fixed_threads, make_input, measure_latency


class Recorder(nn.Module):
    def __init__(self, name: str, log: list) -> None:
        super().__init__()
        self.name, self.log = name, log
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        self.log.append((self.name, x.shape[0], torch.get_num_threads(), self.training))
        return self.fc(x)


def test_latency_alternates_models_with_fixed_threads_and_seeded_input():
    log: list = []
    models = {"a": Recorder("a", log).train(), "b": Recorder("b", log)}
    before = torch.get_num_threads()
    r = measure_latency(
        models, torch.zeros(2, 4), batch_sizes=(1, 8), warmup=1, repeats=3, threads=1
    )
    # warm-up, timed repeats and the memory pass all alternate A B A B
    calls_per_batch = 1 + 3 + 1
    assert [c[0] for c in log] == ["a", "b"] * (2 * calls_per_batch)
    assert [c[1] for c in log] == [1] * (2 * calls_per_batch) + [8] * (2 * calls_per_batch)
    assert {c[2] for c in log} == {1} and not any(c[3] for c in log)  # 1 thread, eval mode
    assert torch.get_num_threads() == before and models["a"].training
    for name in "ab":
        for b in (1, 8):
            s = r[name][b]
            assert s["median_ms"] > 0 and s["p90_ms"] >= s["median_ms"] >= s["min_ms"]
            assert s["throughput"] == pytest.approx(b / (s["median_ms"] / 1e3))
            assert s["repeats"] == 3 and s["threads"] == 1
            assert s["peak_memory_bytes"] > 0 and s["memory_method"] in ("profiler", "estimated")


def test_make_input_is_seeded_and_shaped():
    a = make_input(torch.zeros(3, 1, 5, 5), 4, seed=7)
    assert a.shape == (4, 1, 5, 5) and torch.equal(a, make_input(torch.ones(1, 1, 5, 5), 4, seed=7))
    ints = make_input(torch.tensor([[1, 2], [3, 4]]), 3)
    assert ints.tolist() == [[1, 2], [3, 4], [1, 2]]


def test_bad_settings_raise():
    with pytest.raises(ConfigError, match="at least one model"):
        measure_latency({}, torch.zeros(1, 4))
    with pytest.raises(ConfigError, match="repeats"):
        measure_latency({"a": nn.Linear(4, 2)}, torch.zeros(1, 4), repeats=0)
    with pytest.raises(ConfigError, match="threads"), fixed_threads(0):
        pass


def test_settle_precedes_each_timed_call_with_an_untimed_one_and_rotates_the_order():
    log: list = []
    models = {"a": Recorder("a", log), "b": Recorder("b", log)}
    measure_latency(models, torch.zeros(2, 4), batch_sizes=(1,), warmup=1, repeats=2, threads=1, memory=False,
                    settle=True)
    # (warm-up + 2 repeats) rounds, each call doubled, each round starting one model later
    assert [c[0] for c in log] == ["a", "a", "b", "b", "b", "b", "a", "a", "a", "a", "b", "b"]


@pytest.mark.parametrize("n", [3, 4, 5])
def test_settle_puts_every_model_after_every_other_equally_often(n):
    """Cycling one order (or rotating its start) always puts the same model after a slow-to-settle
    one; the balanced orders spread that carry-over over every model."""
    from collections import Counter

    log: list = []
    names = "abcde"[:n]
    models = {k: Recorder(k, log) for k in names}
    rounds = 2 * n  # one full cycle of orders for odd n, two for even n
    measure_latency(models, torch.zeros(2, 4), batch_sizes=(1,), warmup=0, repeats=rounds, threads=1, memory=False,
                    settle=True)
    calls = [c[0] for c in log][::2]  # the timed call of each (untimed, timed) pair
    within = Counter((calls[i], calls[i + 1]) for i in range(len(calls) - 1) if (i + 1) % n)
    assert set(within) == {(a, b) for a in names for b in names if a != b}
    assert len(set(within.values())) == 1
