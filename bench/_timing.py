"""Time saved models in this fresh process: ``python bench/_timing.py FOLDER``.

FOLDER holds ``job.json`` (model names and ``measure_latency`` keywords), one saved model per
name (``0``, ``1``, ... in order) and ``example.pt``; the medians go to ``FOLDER/timing.json``.
Called by :func:`_common.fresh_latency`.
"""

import json
import sys
from pathlib import Path

import torch

from slimkit.evaluate import measure_latency
from slimkit.export import load_model


def main(folder: Path) -> None:
    job = json.loads((folder / "job.json").read_text())
    torch.set_num_threads(job["kwargs"].get("threads") or torch.get_num_threads())
    models = {name: load_model(folder / str(i)).eval() for i, name in enumerate(job["names"])}
    example = torch.load(folder / "example.pt", weights_only=True)
    timed = measure_latency(models, example, **job["kwargs"])
    (folder / "timing.json").write_text(json.dumps({name: {str(b): s for b, s in by.items()}
                                                     for name, by in timed.items()}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
