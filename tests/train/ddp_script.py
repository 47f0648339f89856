"""Run by tests/train/test_distributed.py under torchrun (2 processes, gloo): the plain Trainer
and run_distillation, which train data-parallel by themselves inside a joined process group;
rank 0 writes the results to the folder given as argv[1]."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from slimkit.distillation import DistillConfig, run_distillation
from slimkit.models import build_model
from slimkit.train import TrainConfig, Trainer
from slimkit.train.distributed import broadcast_bytes, init_distributed, shutdown

CONFIG = TrainConfig(epochs=2, optimizer="sgd", lr=0.1, schedule="constant", weight_decay=0.0, progress=False)


def data() -> tuple[DataLoader, DataLoader]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 8, 8, generator=generator)
    y = (x.mean((1, 2, 3)) > 0).long() + (x[:, 0, 0, 0] > 1).long()
    return (DataLoader(TensorDataset(x, y), batch_size=16, shuffle=False),
            DataLoader(TensorDataset(x[:32], y[:32]), batch_size=32))


def net(hidden: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("mlp", input_size=8, hidden=[hidden], num_classes=3)


def main(out: Path) -> None:
    torch.set_num_threads(1)
    env = init_distributed()
    train, val = data()
    model = net(16, 0)
    fit = Trainer(model, CONFIG, out_dir=out / "fit").fit(train, val)
    student, teacher = net(8, 1), net(32, 2)
    result = run_distillation(student, teacher.eval().requires_grad_(False), train, DistillConfig(train=CONFIG),
                              val_loader=val)
    received = broadcast_bytes(b"from rank 0" if env.is_main else None)
    if env.is_main:
        torch.save({"fit": model.state_dict(), "distill": student.state_dict()}, out / "weights.pt")
        summary = {"world": env.world_size, "fit_history": fit.history, "cache": result.cache,
                   "distill_history": result.history}
        (out / "summary.json").write_text(json.dumps(summary))
    else:
        (out / "received.txt").write_bytes(received)
    shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
