"""compare on text models: latency at the sequence length the user gives."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from slimkit.errors import ConfigError
from slimkit.evaluate import CompareConfig, compare
from slimkit.evaluate.compare import at_length

QUICK = {"batch_sizes": [2], "warmup": 0, "repeats": 2, "noise": [], "shift": [], "topk": [1]}


class LengthSpy(torch.nn.Module):
    """Classifies token IDs and remembers the sequence lengths it was called with."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.head, self.seen = torch.nn.Embedding(10, 4), torch.nn.Linear(4, 2), set()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        self.seen.add(ids.shape[1])
        return self.head(self.embed(ids).mean(1))


def test_latency_is_timed_at_the_given_sequence_length():
    ids = torch.randint(0, 10, (8, 6))
    loader = DataLoader(TensorDataset(ids, ids[:, 0] % 2), batch_size=4)
    a, b = LengthSpy(), LengthSpy()
    result = compare(a, b, loader, CompareConfig(**QUICK, sequence_length=64))
    assert 64 in a.seen and 64 in b.seen and 6 in a.seen  # timed at 64, evaluated on the data's 6
    assert result.settings["sequence_length"] == 64


def test_sequence_length_tiles_tokens_and_masks_and_refuses_images():
    out = at_length({"ids": torch.tensor([[1, 2, 3]]), "mask": torch.ones(1, 3, dtype=torch.long),
                     "pixels": torch.zeros(1, 3)}, 7)
    assert out["ids"].tolist() == [[1, 2, 3, 1, 2, 3, 1]] and out["mask"].shape == (1, 7)
    assert out["pixels"].shape == (1, 3)
    assert at_length(torch.arange(10).view(1, 10), 4).tolist() == [[0, 1, 2, 3]]
    with pytest.raises(ConfigError, match="applies to token inputs"):
        at_length(torch.zeros(2, 3, 8, 8), 4)
