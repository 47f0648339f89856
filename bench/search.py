"""Student architecture search on Fashion-MNIST: does the search beat the hand-designed student?

1. Search the searchnet space (per-stage width, depth, kernel size, depthwise-separable convs,
   fc width) with NSGA-II for accuracy against batch-256 latency, constrained to be no slower
   than the default student at batch 1 and 256. The proxy: 1 epoch of KD on 8,000 samples.
2. Trials per hour with 1 worker (2 threads) and 2 workers (1 thread each), same trials.
3. The chosen student and the default student (DEFAULT_STUDENT) trained with the same full
   recipe (6 epochs of KD from the default teacher, seeds 0 and 1 as the budget allows), test
   accuracy, and latency measured alternating A B A B in one process.
4. Strategies (bench/search_strategies.py): NSGA-II, REINFORCE and DARTS on the same wall-clock
   search budget, every child trained the same way, Pareto fronts of test accuracy against
   measured latency.

    flock /tmp/slimkit-bench.lock .venv/bin/python bench/search.py
    .venv/bin/python bench/search.py --part strategies   # section 4 only (the others are kept)
    .venv/bin/python bench/search.py --quick      # 600 samples, a few trials, sections 1-3
    .venv/bin/python bench/search.py --quick --part strategies     # section 4, small
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import (  # noqa: F401
    ROOT,
    bench_arguments,
    dumps,
    fmt_pm,
    machine_info,
    mean_std,
    result_dir,
    stamp,
    target,
    write_results,
)

QUICKSTART = ROOT / "runs" / "quickstart" / "teacher"


def log(started: float, message: str) -> None:
    print(f"[{time.perf_counter() - started:6.0f}s] {message}", flush=True)


def get_teacher(args, loaders, scratch: Path):
    """The default teacher: runs/quickstart/teacher when trained, else bench._common.default_pair."""
    from _common import cache_model, cached_model

    from slimkit.train import TrainConfig, train

    if not args.quick and (QUICKSTART / "run.json").is_file():
        return cached_model(QUICKSTART), str(QUICKSTART.relative_to(ROOT))
    if args.quick:  # a scratch teacher on the small data
        from slimkit.models import DEFAULT_TEACHER, build_model

        torch.manual_seed(0)
        teacher = build_model(DEFAULT_TEACHER[0], **{**DEFAULT_TEACHER[1], "channels": (8, 16, 32), "hidden": 32})
        train(teacher, loaders.train, config=TrainConfig(epochs=1, progress=False))
        cache_model(scratch / "teacher", teacher, {})
        return teacher, "scratch (quick)"
    from _common import default_pair

    teacher, _, _ = default_pair()
    return teacher, "bench._common.default_pair"


def nas_config(args, cache: Path):
    from slimkit.distillation import DistillConfig
    from slimkit.search import LatencyConfig, NASConfig, SamplerConfig
    from slimkit.train import TrainConfig

    return NASConfig(
        objectives=["accuracy", "latency_b256_ms"],
        constraints={"latency_b1_ms": "1.1x", "latency_b256_ms": "1.0x"},
        proxy=DistillConfig(train=TrainConfig(epochs=1, progress=False), cache_dir=str(cache)),
        proxy_limit=None if args.quick else 8000,
        final=DistillConfig(train=TrainConfig(epochs=args.epochs, progress=False), cache_dir=str(cache)),
        latency=LatencyConfig(warmup=1 if args.quick else 3, repeats=3 if args.quick else 15, threads=1),
        sampler=SamplerConfig(name="nsga2", population_size=8, seed=0),
    )


def throughput(teacher_dir: str, data, config, out: Path, workers: int, trials: int, threads: int) -> dict[str, Any]:
    """Wall time of ``trials`` fresh trials (random sampler, no enqueued default) on ``workers``."""
    from slimkit.search import SamplerConfig, create_study, run_workers, storage_url
    from slimkit.search.students import _WorkerTarget

    url = storage_url(str(out / f"throughput-{workers}.db"))
    config = config.replace(sampler=SamplerConfig(name="random", seed=100 + workers))
    create_study(url, "throughput", list(config.directions().values()))
    start = time.perf_counter()
    run_workers(_WorkerTarget(data, teacher_dir, config, out), storage=url, study_name="throughput", workers=workers,
                n_trials=trials, sampler=config.sampler, threads=threads)
    seconds = time.perf_counter() - start
    done = open_storage_trials(url)
    # Steady state: from the first trial's start to the last one's end (worker start-up excluded).
    busy = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    return {"workers": workers, "threads_per_worker": threads, "trials": len(done), "seconds": seconds,
            "trials_per_hour": len(done) * 3600 / seconds, "steady_seconds": busy,
            "steady_trials_per_hour": len(done) * 3600 / busy}


def open_storage_trials(url: str):
    import optuna

    from slimkit.search import open_storage

    study = optuna.load_study(study_name="throughput", storage=open_storage(url))
    return study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))


def final_runs(models: dict[str, tuple[str, dict]], teacher, loaders, config, seeds: int, deadline: float, started: float):
    """Train every model with the same full distillation recipe per seed; skip a seed that cannot finish."""
    from slimkit.distillation import run_distillation
    from slimkit.models import build_model
    from slimkit.train import evaluate_loss_acc

    shape = {"in_channels": 1, "num_classes": 10, "input_size": loaders.splits.input_shape[-1]}
    results: dict[str, dict[str, list]] = {name: {"test_acc": [], "val_acc": [], "seconds": []} for name in models}
    for seed in range(seeds):
        per_seed = max((sum(r["seconds"]) / len(r["seconds"]) for r in results.values() if r["seconds"]), default=0.0)
        if seed > 0 and time.time() + per_seed * len(models) > deadline:
            log(started, f"seed {seed} skipped: it would not finish within the time budget")
            break
        for name, (family, knobs) in models.items():
            torch.manual_seed(seed)
            model = build_model(family, **shape, **knobs)
            began = time.perf_counter()
            result = run_distillation(model, teacher, loaders.train, config.replace(train=config.train.replace(seed=seed)),
                             val_loader=loaders.val)
            results[name]["seconds"].append(time.perf_counter() - began)
            results[name]["val_acc"].append(result.history[-1]["val_acc"])
            results[name]["test_acc"].append(evaluate_loss_acc(model, loaders.test)[1])
            results[name]["model"] = model
            log(started, f"{name} seed {seed}: test acc {results[name]['test_acc'][-1]:.4f}")
    return results


def verdict(acc: dict[str, float], ratio: dict[str, float], tolerance: float) -> dict[str, Any]:
    """Beats = more accurate at equal-or-lower latency (within ``tolerance``) at batch 1 and 256,
    or lower latency (by more than the tolerance) at both sizes at equal-or-better accuracy."""
    gain = acc["searched"] - acc["default"]
    not_slower = all(r <= 1 + tolerance for r in ratio.values())
    faster = all(r < 1 - tolerance for r in ratio.values())
    beats = (gain > 0 and not_slower) or (faster and gain >= 0)
    how = "higher accuracy at equal or lower latency" if gain > 0 and not_slower else \
        "lower latency at equal accuracy" if beats else "does not beat the default student"
    return {"beats": beats, "how": how, "accuracy_gain_points": 100 * gain, "latency_ratio": ratio, "tolerance": tolerance}


def markdown(data: dict[str, Any]) -> str:
    title = f"# Student architecture search on Fashion-MNIST{' (QUICK: not a result)' if data['quick'] else ''}"
    lines = [title, ""]
    if "search" in data:
        lines += students_markdown(data)
    if "strategies" in data:
        from search_strategies import markdown as strategies_markdown

        lines += ["", *strategies_markdown(data["strategies"])]
    if data.get("targets"):
        lines += ["", "## Targets", "", "| target | value | met |", "|---|---|---|"]
        lines += [f"| {t['target']} | {t['value']:.3f} | {t['met']} |" for t in data["targets"]]
    return "\n".join(lines)


def students_markdown(data: dict[str, Any]) -> list[str]:
    from slimkit.search.outcome import TABLE
    from slimkit.search.pareto import front_markdown

    s, f, lat, v, t = data["search"], data["final"], data["latency"], data["verdict"], data["throughput"]
    setup = (f"Teacher: {data['teacher']['source']} (test acc {data['teacher']['test_acc']:.4f}). "
             f"Search: {s['trials']} trials in {s['seconds']:.0f} s, NSGA-II, objectives accuracy (proxy: 1 epoch KD "
             f"on {data['settings']['proxy_limit'] or 'all'} samples) and batch-256 latency; constraints "
             f"{data['settings']['constraints']} (relative to the default student, re-timed alternating at the end).")
    recipe = (f"## Full recipe ({data['settings']['epochs']} epochs KD, T=4, alpha 0.9; test accuracy over "
              f"{len(f['default']['test_acc'])} seed(s)); latency alternating A B A B, 1 thread, median")
    lines = [setup, "", "## Pareto front (proxy accuracy, latency in ms at 1 thread)", "",
             front_markdown(s["front"], TABLE), "", f"Chosen: trial {s['chosen']['trial']} {s['chosen']['knobs']}.", "",
             recipe, "", "| student | params | MACs | test acc % | latency b1 ms | latency b256 ms |",
             "|---|---|---|---|---|---|"]
    for name in ("default", "searched"):
        lines.append(f"| {name} | {f[name]['params']} | {f[name]['macs']} | {fmt_pm(f[name]['test_acc'])} | "
                     f"{lat[name]['1']:.3f} | {lat[name]['256']:.2f} |")
    ratio = v["latency_ratio"]
    said = (f"**Verdict: {v['how']}** (accuracy {v['accuracy_gain_points']:+.2f} points; latency ratio searched/default "
            f"b1 {ratio['1']:.3f}, b256 {ratio['256']:.3f}; equal means within {100 * v['tolerance']:.0f}%).")
    lines += ["", said, "", "## Search throughput (same proxy trials, fresh studies, SQLite storage)", "",
              "| workers | threads each | trials | wall s | trials/hour | steady trials/hour |",
              "|---|---|---|---|---|---|"]
    for row in t["runs"]:
        lines.append(f"| {row['workers']} | {row['threads_per_worker']} | {row['trials']} | {row['seconds']:.0f} | "
                     f"{row['trials_per_hour']:.0f} | {row['steady_trials_per_hour']:.0f} |")
    note = (f"2 workers / 1 worker: {t['speedup']:.2f}x trials per hour over the wall time (worker start-up "
            f"included: spawn, data and teacher loading), {t['steady_speedup']:.2f}x in steady state (first trial "
            "start to last trial end). The machine has 2 cores shared with other users; absolute times vary.")
    lines += ["", note,
              "", f"Total benchmark time: {data['seconds'] / 60:.1f} min."]
    return lines


def students_part(args, teacher, source, loaders, data_config, base: Path, scratch: Path, started: float,
                  deadline: float) -> dict[str, Any]:
    """Sections 1-3: NSGA-II search, throughput with 1 and 2 workers, chosen vs default student."""
    from slimkit.evaluate import count_macs, count_params, measure_latency
    from slimkit.models import DEFAULT_STUDENT
    from slimkit.search import search_students
    from slimkit.search.space import FAMILY
    from slimkit.train import evaluate_loss_acc

    teacher_dir = str(scratch / "teacher") if args.quick else source if source.startswith("runs/") else \
        str(ROOT / "runs" / "bench-pair" / "teacher")
    config = nas_config(args, base / "teacher-cache")
    log(started, f"teacher {source}; searching")
    t0 = time.perf_counter()
    found = search_students(teacher, loaders, config, base / "search", n_trials=4 if args.quick else 500,
                            timeout=None if args.quick else args.search_seconds)
    search_seconds = time.perf_counter() - t0
    log(started, f"search: {found.trials} trials, front {len(found.front)}, chosen {found.chosen['knobs']}")
    runs = []
    for workers in (1, 2):
        runs.append(throughput(teacher_dir, data_config, config, base / "throughput", workers,
                               2 if args.quick else 6, threads=max(1, args.threads // workers)))
        log(started, f"throughput with {workers} worker(s): {runs[-1]['trials_per_hour']:.0f} trials/hour")
    models = {"default": DEFAULT_STUDENT, "searched": (FAMILY, dict(found.chosen["knobs"]))}
    finals = final_runs(models, teacher, loaders, config.final, args.seeds, deadline, started)
    example = next(iter(loaders.test))[0][:1]
    timed = measure_latency({n: finals[n]["model"] for n in models}, example, batch_sizes=(1, 256),
                            warmup=2 if args.quick else 10, repeats=3 if args.quick else 50, threads=1, memory=False)
    latency = {n: {str(b): timed[n][b]["median_ms"] for b in (1, 256)} for n in models}
    final = {}
    for name in models:
        model = finals[name].pop("model")
        mean, std = mean_std(finals[name]["test_acc"])
        final[name] = {**finals[name], "mean": mean, "std": std, "params": count_params(model),
                       "macs": count_macs(model, example), "spec": model.slimkit_spec}
    ratio = {b: latency["searched"][b] / latency["default"][b] for b in ("1", "256")}
    if not args.quick:
        shutil.copyfile(base / "search" / "front.png", result_dir(args) / "search_front.png")
    return {
        "settings": {"epochs": args.epochs, "seeds": len(final["default"]["test_acc"]), "proxy_limit": config.proxy_limit,
                     "constraints": config.constraints, "objectives": config.objectives, "sampler": "nsga2",
                     "search_seconds_budget": args.search_seconds, "threads": args.threads, "latency_threads": 1},
        "teacher": {"source": source, "test_acc": evaluate_loss_acc(teacher, loaders.test)[1]},
        "search": {"trials": found.trials, "seconds": search_seconds, "scored": len(found.rows),
                   "front": found.front, "chosen": found.chosen, "bounds": found.bounds,
                   "rows": found.rows},
        "throughput": {"runs": runs, "speedup": runs[1]["trials_per_hour"] / runs[0]["trials_per_hour"],
                       "steady_speedup": runs[1]["steady_trials_per_hour"] / runs[0]["steady_trials_per_hour"]},
        "final": final, "latency": latency,
        "verdict": verdict({n: final[n]["mean"] for n in models}, ratio, tolerance=0.05),
        "seconds": time.perf_counter() - started,
    }


def targets_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    if "verdict" in data:
        v = data["verdict"]
        rows.append(target("searched student beats the default student (accuracy gain, points)",
                           v["accuracy_gain_points"], v["beats"]))
    if "strategies" in data:
        v = data["strategies"]["verdict"]
        rows.append(target("best DARTS or RL child not dominated by NSGA-II's front at equal search time (its accuracy "
                           "gain over the best NSGA-II child no slower, points)", v["value"], v["met"]))
    return rows


def main() -> int:
    from search_strategies import compare

    from slimkit.data import DataConfig, load_data

    parser = bench_arguments(__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "students", "strategies"), default=None,
                        help="which sections to measure, the others kept from the results file (default: all; "
                             "with --quick: students)")
    parser.add_argument("--search-seconds", type=float, default=360.0, help="time budget of the search phase")
    parser.add_argument("--compare-seconds", type=float, default=300.0, help="search time of each strategy compared")
    parser.add_argument("--children", type=int, default=3, help="children trained per strategy")
    parser.add_argument("--budget-minutes", type=float, default=25.0, help="the students part's time budget")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    if args.part is None:
        args.part = "students" if args.quick else "all"
    if args.quick:
        args.seeds, args.epochs, args.children = 1, 1, 1
    started, wall = time.perf_counter(), time.time()
    deadline = wall + args.budget_minutes * 60 - 60
    torch.set_num_threads(args.threads)
    scratch = Path(tempfile.mkdtemp(prefix="slimkit-bench-search-"))
    base = scratch if args.quick else ROOT / "runs" / "bench-search"
    out = result_dir(args)
    out.mkdir(parents=True, exist_ok=True)
    previous = out / "search.json"
    data: dict[str, Any] = {}
    if args.part != "all" and previous.is_file():  # keep the sections not measured now
        data = {k: v for k, v in json.loads(previous.read_text()).items()
                if k not in ("benchmark", "machine", "commit", "targets")}
    data["quick"] = args.quick
    try:
        data_config = DataConfig(name="fashion-mnist", limit=600 if args.quick else None)
        loaders = load_data(data_config)
        teacher, source = get_teacher(args, loaders, scratch)
        teacher.eval().requires_grad_(False)
        if args.part in ("all", "students"):
            if base.exists() and not args.quick:
                shutil.rmtree(base / "search", ignore_errors=True)  # a fresh study each time: the figures are this run's
                shutil.rmtree(base / "throughput", ignore_errors=True)
            data.update(stamp(students_part(args, teacher, source, loaders, data_config, base, scratch, started, deadline)))
            log(started, f"{data['verdict']['how']}")
        if args.part in ("all", "strategies"):
            if not args.quick:
                for name in ("nsga2", "rl", "darts"):
                    shutil.rmtree(base / name, ignore_errors=True)
            data["strategies"] = stamp(compare(args, teacher, loaders, base, started))
        data["seconds"] = time.perf_counter() - started
        targets = targets_of(data)
        data["targets"] = targets
        write_results("search", data, markdown(data), targets=targets, out_dir=out)
        log(started, f"results in {out}")
        print(dumps({"targets": targets}))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
