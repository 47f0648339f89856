"""The model I/O contract, end to end: models with integer, dict and multiple inputs and with
tuple, dict and ``.logits`` outputs train, predict, compare, count MACs and time like any other."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from slimkit import modelio
from slimkit.errors import CheckpointError, DataError, ModelError
from slimkit.evaluate import CompareConfig, compare, count_macs, measure_latency, predict, robustness
from slimkit.train import TrainConfig, Trainer, evaluate_loss_acc

VOCAB, LENGTH = 12, 6


@dataclass
class Output:
    """Like a Hugging Face ModelOutput: logits as an attribute."""

    logits: Tensor


class TokenNet(nn.Module):
    """Dict inputs (token IDs and a mask), an object with ``.logits`` out."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 8)
        self.head = nn.Linear(8, 2)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Output:
        assert input_ids.dtype == torch.long  # never cast to float
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1)
        return Output(self.head(pooled))


class TwoInputs(nn.Module):
    """Two positional inputs, a tuple out (logits first)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 2), nn.Linear(3, 2)

    def forward(self, x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.a(x) + self.b(z), x


class Tokens(Dataset):
    """Label 1 when token 3 occurs: learnable from the bag of tokens."""

    def __init__(self, n: int = 96) -> None:
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, VOCAB, (n, LENGTH), generator=g)
        self.labels = (self.ids == 3).any(1).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(LENGTH, dtype=torch.long), "labels": self.labels[i]}


class Pairs(Dataset):
    def __init__(self, n: int = 64) -> None:
        g = torch.Generator().manual_seed(1)
        self.x, self.z = torch.randn(n, 4, generator=g), torch.randn(n, 3, generator=g)
        self.y = (self.x[:, 0] + self.z[:, 0] > 0).long()

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[tuple[Tensor, Tensor], Tensor]:
        return (self.x[i], self.z[i]), self.y[i]


@pytest.mark.parametrize(("build", "data"), [(TokenNet, Tokens), (TwoInputs, Pairs)])
def test_any_model_trains_predicts_compares_and_is_timed(build, data):
    torch.manual_seed(0)
    model, loader = build(), DataLoader(data(), batch_size=16, shuffle=False)
    result = Trainer(model, TrainConfig(epochs=12, lr=3e-2, progress=False)).fit(loader, loader)
    assert result.history[-1]["val_acc"] > 0.8
    spec = model.slimkit_inputs  # the Trainer recorded what the model eats
    assert [t["dtype"] for t in spec["tensors"]] == (["int64", "int64"] if build is TokenNet else ["float32"] * 2)
    assert predict(model, loader).logits.shape == (len(loader.dataset), 2)
    assert evaluate_loss_acc(model, loader)[1] == result.history[-1]["val_acc"]
    example = modelio.example_from(loader)
    assert count_macs(model, modelio.take(example, 1)) > 0
    timed = measure_latency({"m": model}, example, batch_sizes=(1, 4), warmup=0, repeats=2, memory=True)
    assert timed["m"][4]["median_ms"] > 0 and timed["m"][4]["peak_memory_bytes"] > 0
    c = compare(model, model, loader, CompareConfig(batch_sizes=(1,), warmup=0, repeats=2, topk=(1,)))
    assert c.agreement["agreement"] == 1.0
    if build is TokenNet:  # integer inputs are never perturbed: robustness says it skipped them
        assert "integers" in c.robustness["original"]["skipped"]
    else:
        assert set(c.robustness["original"]) >= {"clean", "noise_0.1"}


def test_robustness_perturbs_float_inputs_only():
    seen = []

    class Spy(nn.Module):
        def forward(self, ids: Tensor, x: Tensor) -> Tensor:
            seen.append((ids.clone(), x.clone()))
            return torch.zeros(len(x), 2)

    ids, x = torch.arange(4).reshape(2, 2), torch.zeros(2, 3)
    robustness(Spy(), [((ids, x), torch.zeros(2, dtype=torch.long))], noise=(0.5,), shift=())
    assert all(torch.equal(s[0], ids) for s in seen) and not torch.equal(seen[-1][1], x)


def test_batches_and_outputs_are_read_one_way():
    assert modelio.split([torch.zeros(1), torch.ones(1), "i"]).extra == ("i",)
    assert modelio.split({"x": torch.zeros(1)}).targets is None
    with pytest.raises(DataError, match="a batch must be"):
        modelio.split(3)
    assert modelio.logits_of([torch.ones(1, 2)]).shape == (1, 2)
    with pytest.raises(ModelError, match=r"\.logits"):
        modelio.logits_of({"a": torch.zeros(1), "b": torch.zeros(1)})
    inputs = {"ids": torch.tensor([[1, 5]]), "x": torch.ones(1, 2)}
    assert modelio.input_names(inputs) == ["ids", "x"]
    grown = modelio.tile(inputs, 3)
    assert grown["ids"].tolist() == [[1, 5]] * 3 and grown["x"].shape == (3, 2)


def test_specs_rebuild_inputs_and_refuse_bad_or_huge_ones():
    spec = modelio.input_spec((torch.tensor([[1, 7]]), torch.zeros(1, 3)))
    made = modelio.make_inputs(spec, 2, fill="random")
    assert isinstance(made, tuple) and made[0].dtype == torch.long and int(made[0].max()) < 8
    for bad, match in [({"kind": "tensor"}, "tensors"),
                       ({"kind": "tensor", "tensors": [{"name": "x", "shape": [1 << 20, 1 << 20], "dtype": "float32"}]},
                        "larger than"),
                       ({"kind": "tensor", "tensors": [{"name": "x", "shape": [2], "dtype": "object"}]}, "bad input"),
                       ({"kind": "lambda"}, "not an input spec")]:
        with pytest.raises(CheckpointError, match=match):
            modelio.make_inputs(bad, 1)
