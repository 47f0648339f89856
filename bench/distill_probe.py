"""Why distillation does not help the default tiny student, and what does help the recipe's: KD
against plain training while the temperature, the KD weight, the schedule length and the
student's size change; the cached teacher against the online one; and the new methods (DIST, a
calibrated teacher, function matching, a student initialized from the teacher).

    flock /tmp/slimkit-bench.lock .venv/bin/python bench/distill_probe.py   # full size, seeds 0-2 (~60 min, 2 cores)
    .venv/bin/python bench/distill_probe.py --quick                          # 600 samples, 1 epoch, 2 seeds

Every (run, seed) pair is one task on a pool of single-threaded worker processes (``--workers``,
2 by default); the table gives the mean and spread over ``--seeds`` seeds.

Each pair (plain cross-entropy, then KD) trains the same student from the same seed with the
TrainConfig defaults; the train accuracy column shows how well the student fits its training
data, which is what limits it (a student that cannot fit the labels cannot fit the teacher).
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch
from _common import bench_arguments, default_pair, fmt_pm, result_dir, target, write_results

from slimkit.data import DataConfig, load_data
from slimkit.distillation import DistillConfig, run_distillation
from slimkit.evaluate.agreement import fidelity
from slimkit.evaluate.predict import predict
from slimkit.models import DEFAULT_STUDENT, DEFAULT_TEACHER, build_model
from slimkit.train import TrainConfig, Trainer, evaluate_loss_acc
from slimkit.train.runtime import seed_everything

TINY = dict(DEFAULT_STUDENT[1])
MID = {"channels": [16, 32], "hidden": 32}
RECIPE = {"channels": [16, 32, 64], "hidden": 64}  # the default recipe's student (~61K params)
FM = {"shift": 2, "mixup": 1.0, "cutmix": 1.0}
DIST = [{"name": "dist", "weight": 2.0}, {"name": "ce", "weight": 1.0}]


def kd(alpha: float, temperature: float) -> list[dict[str, Any]]:
    return [{"name": "kd", "weight": alpha, "temperature": temperature}, {"name": "ce", "weight": 1 - alpha}]


#: name -> (student knobs, epochs, losses or None for plain CE, teacher cache mode[, DistillConfig options])
VARIANTS: dict[str, tuple[Any, ...]] = {
    "tiny, CE, 6 epochs": (TINY, 6, None, "memory"),
    "tiny, 0.9 KD (T=4) + 0.1 CE, 6 epochs": (TINY, 6, kd(0.9, 4.0), "memory"),
    "tiny, same, teacher run online (no cache)": (TINY, 6, kd(0.9, 4.0), "off"),
    "tiny, 0.5 KD (T=2) + 0.5 CE, 6 epochs": (TINY, 6, kd(0.5, 2.0), "memory"),
    "tiny, 0.5 KD (T=1) + 0.5 CE, 6 epochs": (TINY, 6, kd(0.5, 1.0), "memory"),
    "tiny, CE, 20 epochs": (TINY, 20, None, "memory"),
    "tiny, 0.9 KD (T=4) + 0.1 CE, 20 epochs": (TINY, 20, kd(0.9, 4.0), "memory"),
    "mid (16-32, fc 32), CE, 6 epochs": (MID, 6, None, "memory"),
    "mid (16-32, fc 32), 0.9 KD (T=4) + 0.1 CE, 6 epochs": (MID, 6, kd(0.9, 4.0), "memory"),
    "tiny, DIST + CE, 6 epochs": (TINY, 6, DIST, "memory"),
    "tiny, 0.9 KD + 0.1 CE from the calibrated teacher, 6 epochs": (TINY, 6, kd(0.9, 4.0), "off", {"calibrate_teacher": True}),
    "recipe (16-32-64, fc 64), CE, 12 epochs": (RECIPE, 12, None, "memory"),
    "recipe, 0.9 KD + 0.1 CE, 12 epochs": (RECIPE, 12, kd(0.9, 4.0), "memory"),
    "recipe, initialized from the teacher + KD + CE, 12 epochs": (RECIPE, 12, kd(0.9, 4.0), "memory", {"init": "teacher"}),
    "recipe, function matching (int8 teacher online), 12 epochs": (RECIPE, 12, kd(0.9, 4.0), "off",
                                                                  {"augment": FM, "teacher_runtime": "int8"}),
}


def teacher_model(loaders: Any, quick: bool) -> tuple[torch.nn.Module, str]:
    """bench/distill.py's default teacher (trained once, cached in runs/bench-pair); 1 epoch here with --quick."""
    if not quick:
        return default_pair()[0], "runs/bench-pair/teacher (bench/distill.py's default teacher)"
    seed_everything(0)
    teacher = build_model(DEFAULT_TEACHER[0], **DEFAULT_TEACHER[1])
    Trainer(teacher, TrainConfig(epochs=1, progress=False)).fit(loaders.train)
    return teacher, "trained here (1 epoch)"


def run(name: str, seed: int, loaders: Any, teacher: torch.nn.Module, quick: bool) -> dict[str, Any]:
    knobs, epochs, losses, cache, *rest = VARIANTS[name]
    options = rest[0] if rest else {}
    seed_everything(seed)
    student = build_model("cnn", **knobs)
    config = TrainConfig(epochs=max(1, epochs // 6) if quick else epochs, seed=seed, progress=False)
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    if losses is None:
        history = Trainer(student, config).fit(loaders.train, loaders.val).history
    else:
        out = run_distillation(student, teacher, loaders.train, DistillConfig(losses=losses, train=config, cache_teacher=cache,
                                                                              **options), val_loader=loaders.val)
        history = out.history
        extra = fidelity(predict(teacher, loaders.test).logits, predict(student, loaders.test).logits)
    return {"test_acc": evaluate_loss_acc(student, loaders.test)[1], "train_acc": history[-1]["train_acc"],
            "epochs": config.epochs, "seconds": time.perf_counter() - started, **extra}


#: per worker process: the data, the teacher and where it came from (set by ``init_worker``)
WORKER: dict[str, Any] = {}


def init_worker(threads: int, quick: bool) -> None:
    torch.set_num_threads(threads)
    loaders = load_data(DataConfig(name="fashion-mnist", seed=0, limit=600 if quick else None))
    teacher, source = teacher_model(loaders, quick)
    WORKER.update(loaders=loaders, teacher=teacher.eval().requires_grad_(False), source=source, quick=quick)


def run_task(name: str, seed: int) -> dict[str, Any]:
    return run(name, seed, WORKER["loaders"], WORKER["teacher"], WORKER["quick"])


def teacher_info() -> tuple[str, float]:
    return WORKER["source"], evaluate_loss_acc(WORKER["teacher"], WORKER["loaders"].test)[1]


def cost(name: str) -> float:
    """Rough cost of one task, so the longest start first and the workers finish together."""
    knobs, epochs, _, cache, *_ = VARIANTS[name]
    return epochs * (1 + len(knobs["channels"])) * (2 if cache == "off" else 1)


def summarize(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """One run over its seeds: each figure's mean (the table's value), with every seed kept."""
    out: dict[str, Any] = {"seeds": per_seed, "epochs": per_seed[0]["epochs"]}
    for key in ("test_acc", "train_acc", "seconds", "top1_agreement", "kl"):
        values = [r[key] for r in per_seed if r.get(key) is not None]
        if key in per_seed[0]:
            out[key] = statistics.fmean(values) if values else None
    return out


def markdown(data: dict[str, Any]) -> str:
    seeds = len(next(iter(data["runs"].values()))["seeds"])
    lines = [f"# Distillation probe: plain training against KD{' (QUICK: not a result)' if data['quick'] else ''}", "",
             (f"`{data['command']}`; {seeds} seed(s) (mean ± std), {data['workers']} worker processes x "
              f"{data['threads']} thread; teacher {data['teacher']} (test {100 * data['teacher_acc']:.2f}%). "
              "Seconds are per run (one seed), wall time in its worker."), "",
             "| run | test acc % | train acc % (last epoch) | agreement with the teacher | KL(teacher ‖ student) | seconds |",
             "|---|---|---|---|---|---|"]
    for name, r in data["runs"].items():
        fid = (f"{100 * r['top1_agreement']:.2f}% | {r['kl']:.4f}") if "kl" in r else "— | —"
        train = "—" if r["train_acc"] is None else f"{100 * r['train_acc']:.2f}"  # mixed labels: no train accuracy
        accs = [s["test_acc"] for s in r["seeds"]]
        lines.append(f"| {name} | {fmt_pm(accs)} | {train} | {fid} | {r['seconds']:.0f} |")
    lines += ["", "## Targets", "", "| Target | Value | Met |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['value']:.3g} | {'MET' if t['met'] else 'NOT MET'} |" for t in data["targets"]]
    return "\n".join(lines)


def targets(runs: dict[str, Any]) -> list[dict[str, Any]]:
    """What the probe checks, in the shared schema, on the means over seeds."""
    cached, online = runs["tiny, 0.9 KD (T=4) + 0.1 CE, 6 epochs"], runs["tiny, same, teacher run online (no cache)"]
    same = 100 * max(abs(a["test_acc"] - b["test_acc"]) for a, b in zip(cached["seeds"], online["seeds"]))
    plain = runs["recipe (16-32-64, fc 64), CE, 12 epochs"]["test_acc"]
    new = [k for k in runs if k.startswith("recipe, ") and "0.9 KD + 0.1 CE, 12" not in k]
    best = max(runs[k]["test_acc"] for k in new)
    return [target("cached teacher outputs reproduce the online teacher's run, every seed (points apart, worst)",
                   same, same <= 0.5),
            target("recipe student: a new method >= 0.5 points above CE alone at 12 epochs (mean)",
                   100 * (best - plain), 100 * (best - plain) >= 0.5)]


def main() -> None:
    parser = bench_arguments(__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 per run (default 3; 2 with --quick)")
    parser.add_argument("--workers", type=int, default=2, help="single-threaded worker processes")
    parser.set_defaults(threads=1)
    args = parser.parse_args()
    seeds = args.seeds or (2 if args.quick else 3)
    tasks = sorted(((name, seed) for name in VARIANTS for seed in range(seeds)), key=lambda t: -cost(t[0]))
    if not args.quick:
        default_pair()  # train and cache the teacher once, before the workers read it
    context = multiprocessing.get_context("spawn")  # fork after torch has run threads can hang
    with ProcessPoolExecutor(args.workers, mp_context=context, initializer=init_worker,
                             initargs=(args.threads, args.quick)) as pool:
        futures = {task: pool.submit(run_task, *task) for task in tasks}
        for (name, seed), future in futures.items():
            r = future.result()
            print(f"{name} / seed {seed}: test {r['test_acc']:.4f}", flush=True)
        source, teacher_acc = pool.submit(teacher_info).result()
    runs = {name: summarize([futures[(name, seed)].result() for seed in range(seeds)]) for name in VARIANTS}
    data = {"quick": args.quick, "threads": args.threads, "workers": args.workers, "teacher": source,
            "teacher_acc": teacher_acc, "runs": runs,
            "command": "python bench/distill_probe.py" + (" --quick" if args.quick else "") +
                       (f" --seeds {args.seeds}" if args.seeds else ""), "targets": targets(runs)}
    write_results("distill_probe", data, markdown(data), targets=data["targets"], out_dir=result_dir(args))
    print(markdown(data))


if __name__ == "__main__":
    main()
