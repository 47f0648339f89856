"""Shared plumbing for benchmarks: machine facts, result files, seeds, the default teacher.

Every benchmark writes bench/results/NAME.json (all figures plus the machine, torch version and
git commit) and bench/results/NAME.md (the table a person reads).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "src"))

from slimkit.fileio import atomic_write_json, atomic_write_text


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_info() -> dict[str, Any]:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "commit": git_commit()}


def target(name: str, value: float, met: bool) -> dict[str, Any]:
    """One row of a results file's ``targets``: what was asked, the figure measured, met or not."""
    return {"target": name, "value": float(value), "met": bool(met)}


def stamp(section: dict[str, Any]) -> dict[str, Any]:
    """``section`` with the commit and machine it was measured on (every section carries its own,
    so re-measuring one section leaves the others' stamps true)."""
    return {**section, "commit": git_commit(), "machine": machine_info()}


def check_targets(targets: Any) -> list[dict[str, Any]]:
    """The shared schema: a list of ``{"target": str, "value": number, "met": bool}``."""
    ok = isinstance(targets, list) and all(
        isinstance(t, dict) and set(t) == {"target", "value", "met"} and isinstance(t["target"], str)
        and isinstance(t["value"], (int, float)) and not isinstance(t["value"], bool) and isinstance(t["met"], bool)
        for t in targets)
    if not ok:
        raise ValueError(f"targets must be a list of {{target: str, value: number, met: bool}}, got {targets!r}"[:300])
    return targets


def write_results(name: str, data: dict[str, Any], markdown: str, *, targets: list[dict[str, Any]],
                  out_dir: Path | None = None) -> Path:
    """Write NAME.json and NAME.md; ``--quick`` runs write under a scratch folder instead.

    ``data`` holds the figures, by section (each :func:`stamp`-ed); ``targets`` the verdicts in the
    shared schema (:func:`target`). The file also records the machine and commit of this run.
    """
    out = out_dir or RESULTS
    record = {"benchmark": name, "machine": machine_info(), "commit": git_commit(), **data}
    record["targets"] = check_targets(targets)  # every benchmark states its verdicts in one schema
    atomic_write_json(out / f"{name}.json", record)
    atomic_write_text(out / f"{name}.md", markdown.rstrip() + "\n")
    return out / f"{name}.json"


def merge_sections(stored: dict[str, Any], fresh: dict[str, Any], sections: list[str], *, where: Path
                   ) -> dict[str, Any]:
    """The ``stored`` results (read from ``where``) with ``fresh`` put in: a part run re-measures some sections
    (each :func:`stamp`-ed) and keeps every other stored section, and its stamp, as it was.

    ``fresh`` holds the run's facts and only the re-measured ``sections``; the stored targets are
    dropped (the caller derives them again from the merged figures). A quick run never merges into
    full-size results, nor the other way round.
    """
    stored = dict(stored)
    if stored and stored.get("quick") != fresh.get("quick"):
        raise SystemExit(f"{where}: holds {'quick' if stored.get('quick') else 'full-size'} results; a "
                         f"{'quick' if fresh.get('quick') else 'full-size'} part run cannot merge into it (use --out)")
    stored.pop("targets", None)
    merged = {**stored, **fresh}
    merged["merged"] = [*stored.get("merged", []),
                        {"sections": list(sections), "command": fresh.get("command"), "commit": git_commit()}]
    return merged


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt_pm(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    """``mean ± std``; one value is marked as one seed (a std of 0 would claim a spread never measured).

    >>> fmt_pm([0.9, 0.92]), fmt_pm([0.9])
    ('91.00 ± 1.41', '90.00 (1 seed)')
    """
    mean, std = mean_std(values)
    if len(values) == 1:
        return f"{mean * scale:.{digits}f} (1 seed)"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def bench_arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny version (< 1 minute), results to --out")
    parser.add_argument("--out", type=Path, default=None, help="folder for the result files")
    parser.add_argument("--threads", type=int, default=2)
    return parser


def result_dir(args: argparse.Namespace) -> Path:
    """Quick runs never overwrite the committed full-size results."""
    if args.out is not None:
        return args.out
    return RESULTS if not args.quick else ROOT / "runs" / "bench-quick"


def cache_model(folder: Path, model: Any, record: dict[str, Any]) -> Path:
    """Keep a trained model for later benchmark runs: ``save_model`` with ``record`` (how it was
    trained) in its metadata."""
    from slimkit.export import save_model

    return save_model(model, folder, metadata={"bench": record})


def cache_record(folder: Path) -> dict[str, Any]:
    """The record a cached model was saved with (``{}`` when there is none): reuse it only if it
    says the model was trained as this run would train it."""
    from slimkit.errors import CheckpointError
    from slimkit.export import read_spec

    try:
        return dict((read_spec(folder).get("metadata") or {}).get("bench") or {})
    except CheckpointError:
        return {}


def cached_model(folder: Path) -> Any:
    from slimkit.export import load_model

    return load_model(folder)


def default_pair(*, limit: int | None = None, epochs: int = 6, seed: int = 0, cache: Path | None = None):
    """The default teacher and student, trained on Fashion-MNIST (reused from ``cache`` when there).

    Returns ``(teacher, student, loaders)``.
    """
    from slimkit.data import DataConfig, load_data
    from slimkit.models import DEFAULT_STUDENT, DEFAULT_TEACHER, build_model
    from slimkit.train import TrainConfig, Trainer
    from slimkit.train.runtime import seed_everything

    loaders = load_data(DataConfig(name="fashion-mnist", limit=limit, seed=seed))
    cache = cache or ROOT / "runs" / ("bench-pair" if limit is None else f"bench-pair-{limit}")
    config = TrainConfig(epochs=epochs, seed=seed, progress=False)
    models = []
    for role, (name, knobs) in (("teacher", DEFAULT_TEACHER), ("student", DEFAULT_STUDENT)):
        folder = cache / role
        if cache_record(folder).get("train") == config.to_dict():
            models.append(cached_model(folder))
            continue
        seed_everything(seed)
        model = build_model(name, **knobs)
        Trainer(model, config).fit(loaders.train, loaders.val)
        cache_model(folder, model, {"train": config.to_dict(), "role": role})
        models.append(model)
    return models[0], models[1], loaders


def fresh_latency(models: dict[str, Any], example: Any, **kwargs: Any) -> dict[str, dict[int, dict[str, Any]]]:
    """``measure_latency(models, example, **kwargs)``, run in a fresh Python process on the
    models saved (bench/_timing.py), so the timing sees nothing of what this process did
    before. Training in the same process first slowed some models more than others: the pruned
    ViTs of bench/transformer.py measured 1.37x (equal shares) and 1.48x (the fastest mix) against
    the teacher when timed after their fine-tunes in the benchmark's process, while cuts of the
    same structure timed in a process that had trained nothing measured 1.43-1.47x (three runs)
    and 1.59-1.60x (two)."""
    import tempfile

    from slimkit.export import save_model

    with tempfile.TemporaryDirectory(prefix="slimkit-timing-") as tmp:
        folder = Path(tmp)
        for i, model in enumerate(models.values()):
            save_model(model, folder / str(i))
        torch.save(example, folder / "example.pt")
        (folder / "job.json").write_text(json.dumps({"names": list(models), "kwargs": kwargs}))
        subprocess.run([sys.executable, str(Path(__file__).with_name("_timing.py")), str(folder)], check=True)
        timed = json.loads((folder / "timing.json").read_text())
    return {name: {int(b): stats for b, stats in timed[name].items()} for name in models}


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True)
