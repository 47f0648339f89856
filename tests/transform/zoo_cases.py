"""Helpers for the foreign-architecture tests of factorization, sharing and transforms.

``loader`` feeds a zoo model (``tests/zoo.py``) tiny data in the form it takes (image tensors,
integer tokens, a mapping, two inputs); ``assert_reloads`` saves models and reloads them in a
fresh Python process, which must give identical outputs. Run as a script, this file is that
fresh process: ``python zoo_cases.py FOLDER...``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

TESTS = Path(__file__).resolve().parents[1]
SRC = TESTS.parent / "src"
#: The data shape of ``tiny_splits``: every zoo model is built for it.
KNOBS = {"in_channels": 1, "num_classes": 3, "input_size": 8}


def build(name: str, seed: int = 0) -> nn.Module:
    """Zoo model ``name`` for ``tiny_splits`` data, in eval mode, seeded."""
    import zoo

    torch.manual_seed(seed)
    return zoo.build(name, **KNOBS).eval()


def loader(name: str, splits: Any, batch_size: int = 8) -> DataLoader:
    """``splits.train`` as zoo model ``name`` takes it."""
    import zoo

    return DataLoader(zoo.adapt(name, splits.train), batch_size=batch_size)


def inputs(batches: DataLoader) -> Any:
    """The model inputs of the first batch."""
    from slimkit.modelio import split

    return split(next(iter(batches))).inputs


def outputs(model: nn.Module, x: Any) -> torch.Tensor:
    """The logits of ``model`` on ``x`` (eval mode, no gradients)."""
    from slimkit.modelio import forward_logits

    with torch.no_grad():
        return forward_logits(model.eval(), x)


def assert_reloads(cases: dict[str, tuple[str, nn.Module, Any]], root: Path) -> None:
    """Save each ``label -> (zoo name, model, inputs)`` under ``root``, reload them all in one
    fresh process and require outputs identical to ``model``'s, bit for bit."""
    from slimkit.export.serialize import save_model

    folders = []
    for label, (name, model, x) in cases.items():
        folder = save_model(model, root / label)
        torch.save({"inputs": x, "logits": outputs(model, x)}, folder / "case.pt")
        (folder / "zoo.json").write_text(json.dumps({"name": name}))
        folders.append(str(folder))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, __file__, *folders], capture_output=True, text=True, timeout=300, env=env,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _reload_all(folders: list[str]) -> list[str]:
    torch.set_num_threads(1)  # the same reduction order as the test process
    sys.path.insert(0, str(TESTS))
    from slimkit.export.serialize import load_model

    failures = []
    for folder in map(Path, folders):
        name = json.loads((folder / "zoo.json").read_text())["name"]
        model = load_model(folder, model=build(name, seed=1))  # other initial weights: the file must win
        case = torch.load(folder / "case.pt", weights_only=True)
        got = outputs(model, case["inputs"])
        if not torch.equal(got, case["logits"]):
            failures.append(f"{folder.name}: outputs differ by {(got - case['logits']).abs().max():.3g}")
    return failures


if __name__ == "__main__":
    problems = _reload_all(sys.argv[1:])
    print("\n".join(problems) or "all identical")
    sys.exit(1 if problems else 0)
