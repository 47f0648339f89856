"""Knowledge distillation on Fashion-MNIST: the default teacher into the tiny default student,
every method of slimkit.distillation, 3 seeds, 6 epochs each, the TrainConfig defaults everywhere;
then the default recipe's 61K student (12 epochs) alone and with each new method, and 3x schedules.

    flock /tmp/slimkit-bench.lock .venv/bin/python bench/distill.py   # full size (2 cores)
    .venv/bin/python bench/distill.py --quick                         # 600 samples, 1 epoch, 1 seed
    .venv/bin/python bench/distill.py --rows r61_alone,r61_init --merge   # re-measure some rows
    .venv/bin/python bench/distill.py --rows tiny_kd_x3 --merge --timing  # ... and the epoch timing
    .venv/bin/python bench/distill.py --timing                            # the epoch timing alone

Tasks (one row, one seed) run in a pool of 2 single-threaded workers (bench/distill_rows.py).
Hyperparameters that the papers leave open are chosen on the validation split with seed 0 only
(every candidate's figures are kept in the JSON); the other seeds then run the chosen one.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import ROOT, bench_arguments, cache_record, fmt_pm, mean_std, result_dir, target, write_results
from distill_rows import (
    MLP_STUDENT,
    MLP_TEACHER,
    MLP_TEACHER_EPOCHS,
    QUICK_ROWS,
    RECIPE_SCALE,
    RECIPE_STUDENT,
    SECOND_TEACHER,
    STUDENT,
    TEACHER,
    WARMUP,
    Row,
    interleaved_timing,
    rows,
)

from slimkit.train import TrainConfig

# ---------------------------------------------------------------- plan


@dataclass
class Task:
    key: str
    kind: str
    params: dict[str, Any]
    deps: tuple[str, ...] = ()
    priority: int = 50


def quickstart_teacher(epochs: int) -> Path | None:
    """runs/quickstart/teacher when it was trained on full Fashion-MNIST with today's defaults."""
    folder = ROOT / "runs" / "quickstart" / "teacher"
    run, loose = cache_record(folder), ("progress", "threads", "device")
    want = {k: v for k, v in TrainConfig(epochs=epochs, seed=0).to_dict().items() if k not in loose}
    have = {k: v for k, v in run.get("train", {}).items() if k not in loose}
    ok = have == want and run.get("dataset") == "fashion-mnist" and run.get("limit") is None and run.get("role") == "teacher"
    return folder if ok and (folder / "model").is_dir() else None


def prep_tasks(args: Any, dirs: dict[str, str]) -> list[Task]:
    """Teachers (trained once, cached under runs/) and the disk caches of their outputs."""
    tasks = []
    source = None if args.limit else quickstart_teacher(args.epochs)
    if source is not None:  # a private copy: a rerun of quickstart must not swap the teacher mid-benchmark
        shutil.rmtree(dirs["teacher"], ignore_errors=True)
        shutil.copytree(source, dirs["teacher"], ignore=shutil.ignore_patterns("*.pt"))
        dirs["teacher_source"] = str(source)
        tasks.append(Task("teacher", "evaluate", {"path": dirs["teacher"]}, priority=0))
    elif args.limit:  # --quick and development runs: a scratch teacher on the small data
        tasks.append(Task("teacher", "train_teacher", {"model": TEACHER, "data": "full", "seed": 0, "out": dirs["teacher"]}, priority=0))
    else:
        dirs["teacher"] = str(ROOT / "runs" / "bench-pair" / "teacher")
        tasks.append(Task("teacher", "default_pair", {"path": dirs["teacher"]}, priority=0))
    for key, model, data in (("teacher2", SECOND_TEACHER, "full"), ("teacher20", TEACHER, "labeled20"),
                             ("mlp_teacher", MLP_TEACHER, "full")):
        params = {"model": model, "data": data, "seed": 0, "out": dirs[key]}
        if key == "mlp_teacher" and not args.limit:
            params["epochs"] = MLP_TEACHER_EPOCHS
        tasks.append(Task(key, "train_teacher", params, priority=1))
    fitnet = [{"name": "fitnet", "student": "features.1", "teacher": "features.2"}]
    at = [{"name": "at", "student": "features.0", "teacher": "features.1"}, {"name": "at", "label": "at1", "student": "features.1",
                                                                             "teacher": "features.2"}]
    rkd = [{"name": "rkd", "student": "classifier.out:input", "teacher": "classifier.out:input"}]
    for key, teachers, losses, deps in (
        ("cache:logits", ["teacher"], [{"name": "kd"}], ("teacher",)),
        ("cache:fitnet", ["teacher"], fitnet, ("teacher",)),
        ("cache:at", ["teacher"], at, ("teacher",)),
        ("cache:rkd", ["teacher"], rkd, ("teacher",)),
        ("cache:multi", ["teacher", "teacher2"], [{"name": "kd"}], ("teacher", "teacher2", "cache:logits")),
        ("cache:mlp", ["mlp_teacher"], [{"name": "kd"}], ("mlp_teacher",)),
    ):
        student = MLP_STUDENT if key == "cache:mlp" else STUDENT
        tasks.append(Task(key, "warm_cache", {"teachers": [dirs[t] for t in teachers], "losses": losses,
                                              "student": student, "cache_dir": dirs["cache"]}, deps, priority=2))
    return tasks


def row_task(row: Row, seed: int, params: dict[str, Any], dirs: dict[str, str], suffix: str = "") -> Task:
    p = {"model": STUDENT, **row.params, **params, "seed": seed}
    deps = row.deps
    if "save" in p:
        p["save"] = f"{p['save']}/student-s{seed}"
    if row.kind == "born_again":
        p["gen0"], deps = f"{p['gen0']}/student-s{seed}", (*deps, f"student/{seed}")
    # Expensive rows first, so the two workers finish together.
    cost = {"dml": 10, "born_again": 30, "pseudo": 20}.get(row.kind, 25 if row.section == "main" else 35)
    cost = {"long": 0, "recipe": 15}.get(row.section, cost)
    return Task(f"{row.name}{suffix}/{seed}", row.kind, p, deps, priority=cost + seed)


# ---------------------------------------------------------------- scheduler


def run_pool(tasks: list[Task], table: list[Row], args: Any, dirs: dict[str, str], log) -> tuple[dict, dict, dict]:
    """Run every task (dependencies first) on a pool; choose candidates on validation as soon as
    their seed-0 runs finish, then queue the other seeds. Returns (results, errors, choices)."""
    from distill_rows import init_worker, run_task

    pending = {t.key: t for t in tasks}
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    choices: dict[str, Any] = {}
    waiting = {r.name: r for r in table if r.candidates}
    settings = {"threads": max(1, args.threads // args.workers), "limit": args.limit, "epochs": args.epochs}
    context = multiprocessing.get_context("spawn")  # fork after torch has run threads can hang
    with ProcessPoolExecutor(args.workers, mp_context=context, initializer=init_worker, initargs=(settings,)) as pool:
        running: dict[Any, tuple[str, float]] = {}
        while pending or running:
            for key, task in list(pending.items()):
                failed = [d for d in task.deps if d in errors]
                if failed:
                    errors[key] = f"skipped: {failed[0]} failed"
                    del pending[key]
            ready = sorted((t for t in pending.values() if all(d in results for d in t.deps)), key=lambda t: t.priority)
            for task in ready[: args.workers - len(running)]:
                del pending[task.key]
                running[pool.submit(run_task, task.kind, task.params)] = (task.key, time.perf_counter())
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                key, started = running.pop(future)
                try:
                    results[key] = future.result()
                    acc = results[key].get("test_acc")
                    log(f"done {key} in {time.perf_counter() - started:.0f}s" + (f": test {acc:.4f}" if acc is not None else ""))
                except Exception:  # noqa: BLE001 (one broken row must not sink the others; reported at the end)
                    errors[key] = traceback.format_exc()
                    log(f"FAILED {key}:\n{errors[key]}")
            for name, row in list(waiting.items()):
                keys = [f"{name}@{c}/0" for c in row.candidates]
                if all(k in results or k in errors for k in keys):
                    del waiting[name]
                    scored = {c: results[k] for c, k in zip(row.candidates, keys) if k in results}
                    if not scored:
                        continue
                    best = max(scored, key=lambda c: scored[c]["val_acc"])  # validation only, never test
                    choices[name] = {"chosen": best, "candidates": {c: {"val_acc": r["val_acc"], "test_acc": r["test_acc"]}
                                                                    for c, r in scored.items()}}
                    results[f"{name}/0"] = scored[best]
                    for seed in range(1, args.seeds):
                        task = row_task(row, seed, row.candidates[best], dirs)
                        pending[task.key] = task
    return results, errors, choices


def plan(args: Any, dirs: dict[str, str]) -> tuple[list[Task], list[Row]]:
    prep = {t.key: t for t in prep_tasks(args, dirs)}  # settles where the default teacher comes from
    wanted = args.rows if args.rows is not None else (QUICK_ROWS if args.quick else None)
    table = [r for r in rows(dirs) if wanted is None or r.name in wanted]
    tasks, todo = [], ["teacher", *(d for r in table for d in r.deps)]  # only the prep work these rows need
    while todo:
        key = todo.pop()
        if key in prep and all(t.key != key for t in tasks):
            tasks.append(prep[key])
            todo.extend(prep[key].deps)
    for row in table:
        if row.candidates and not args.quick:
            tasks += [row_task(row, 0, params, dirs, f"@{c}") for c, params in row.candidates.items()]
            continue
        first = next(iter(row.candidates.values()), {})  # --quick: the papers' setting only
        tasks += [row_task(row, seed, first, dirs) for seed in range(args.seeds)]
    return tasks, table


# ---------------------------------------------------------------- report


#: The plain (CE, no augmentation) rows whose epochs are each student architecture's time unit.
PLAIN_ROWS = ("student", "r61_alone", "r61_alone_x3", "tiny_alone_x3")


def model_key(row: Row) -> str:
    return str(row.params.get("model", STUDENT))


def summarize(table: list[Row], results: dict, choices: dict, args: Any) -> list[dict[str, Any]]:
    spec = {r.name: r for r in table}
    by_pid: dict[tuple[str, int], list[float]] = {}  # plain epochs of each student architecture, per worker
    everyone: dict[str, list[float]] = {}
    for key, r in results.items():
        name = key.split("/")[0]
        if name in PLAIN_ROWS and name in spec:
            by_pid.setdefault((model_key(spec[name]), r["pid"]), []).extend(r["epoch_seconds"])
            everyone.setdefault(model_key(spec[name]), []).extend(r["epoch_seconds"])
    out: dict[str, dict[str, Any]] = {}
    for row in table:
        runs = [results[f"{row.name}/{s}"] for s in range(args.seeds) if f"{row.name}/{s}" in results]
        if not runs:
            continue
        accs = [r["test_acc"] for r in runs]
        ratios = []
        arch = model_key(row)
        for r in runs:  # against the same student's plain epochs timed in the same worker process, if it ran one
            ref = by_pid.get((arch, r["pid"])) or everyone.get(arch)
            ratios.append(statistics.fmean(r["epoch_seconds"]) / statistics.fmean(ref) if ref else None)
        extra = {k: [r[k] for r in runs] for k in ("pseudo_label_acc", "peer1_test_acc", "gen0_test_acc", "cache") if k in runs[0]}
        chosen = choices.get(row.name, {}).get("chosen")
        out[row.name] = {
            "name": row.name, "label": row.label, "section": row.section, "note": row.note, "seeds": len(runs),
            "test_acc": accs, "val_acc": [r["val_acc"] for r in runs], "mean": mean_std(accs)[0], "std": mean_std(accs)[1],
            "epochs": len(runs[0]["epoch_seconds"]),
            **{k: statistics.fmean(r[k] for r in runs) for k in ("kl", "agreement") if k in runs[0]},
            "epoch_seconds": [r["epoch_seconds"] for r in runs],
            "epoch_time_ratio": statistics.fmean(ratios) if None not in ratios else None,
            "ratio_reference": "same worker process" if all((arch, r["pid"]) in by_pid for r in runs) else "all workers",
            "params": {**{k: v for k, v in row.params.items() if k not in ("teachers", "cache_dir", "save", "gen0")},
                       **(row.candidates.get(chosen) or next(iter(row.candidates.values()), {}))},
            "chosen": chosen, "losses": runs[0].get("losses"), "gap_reference": None, "gap_closed": None, **extra,
        }
    return list(out.values())


def add_gaps(table_rows: list[dict[str, Any]], table: list[Row], teachers: dict[str, Any]) -> None:
    means = {r["name"]: r["mean"] for r in table_rows}
    spec = {r.name: r for r in table}
    for r in table_rows:
        gap = spec[r["name"]].gap
        if gap is None or gap[0] not in means or "test_acc" not in teachers.get(gap[1], {}):
            continue
        r["gap_reference"] = {"student": gap[0], "teacher": gap[1]}
    compute_gaps(table_rows, teachers)


def compute_gaps(table_rows: list[dict[str, Any]], teachers: dict[str, Any]) -> None:
    """Gap closed = (row - student alone) / (teacher - student alone); undefined (None) when the
    teacher is not better than the student alone: there is no gap to close."""
    means = {r["name"]: r["mean"] for r in table_rows}
    for r in table_rows:
        ref = r.get("gap_reference")
        if not ref:
            continue
        low, high = means[ref["student"]], teachers[ref["teacher"]]["test_acc"]
        r["gap_closed"] = (r["mean"] - low) / (high - low) if high > low else None
        r["no_gap"] = high <= low


def targets(table_rows: list[dict[str, Any]], timing: dict[str, Any] | None,
            teachers: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The verdicts in the shared schema (``_common.target``), and a line of detail for each."""
    by = {r["name"]: r for r in table_rows}
    out: list[dict[str, Any]] = []
    details: dict[str, str] = {}

    def add(name: str, value: float, met: bool, detail: str) -> None:
        out.append(target(name, value, met))
        details[name] = detail

    main = [r for r in table_rows if r["section"] == "main" and r.get("gap_reference")]
    scored = [r for r in main if r["gap_closed"] is not None]
    if scored:
        best = max(scored, key=lambda r: r["gap_closed"])
        add("tiny student, 6 epochs: best method closes >= 50% of the teacher-student gap", best["gap_closed"],
            best["gap_closed"] >= 0.5, f"best: {best['label']} ({best['gap_closed']:.0%})")
    elif main:
        add("tiny student, 6 epochs: best method closes >= 50% of the teacher-student gap", 0.0, False,
            "no gap to close: the teacher is not better than the student alone")
    kds = [by[k] for k in ("kd", "kd+ce") if k in by]
    news = [by[k] for k in ("dkd", "logit_std") if k in by]
    if kds and news:
        kd, new = max(kds, key=lambda r: r["mean"]), max(news, key=lambda r: r["mean"])
        delta = (new["mean"] - kd["mean"]) * 100
        add("DKD or logit standardization beats plain KD by >= 0.3 points (mean)", delta, delta >= 0.3,
            f"{new['name']} {new['mean']:.2%} vs best KD row {kd['name']} {kd['mean']:.2%}")
    recipe = [r for r in table_rows if r["section"] == "recipe" and r.get("gap_reference")
              and r["name"] != "r61_alone_aug"]
    if recipe and "r61_alone" in by:
        alone, best = by["r61_alone"], max(recipe, key=lambda r: r["mean"])
        gain = (best["mean"] - alone["mean"]) * 100
        like = f"; alone with the same augmentation: {by['r61_alone_aug']['mean']:.2%}" if "r61_alone_aug" in by else ""
        add("recipe 61K student, 12 epochs: best method >= 0.5 points above the student alone", gain, gain >= 0.5,
            f"{best['label']} {best['mean']:.2%} vs alone {alone['mean']:.2%}{like}")
        closed = best["gap_closed"] if best["gap_closed"] is not None else 0.0
        add("recipe 61K student, 12 epochs: best method closes >= 60% of the gap to the teacher", closed,
            best["gap_closed"] is not None and closed >= 0.6, f"{best['label']}: {pct(best['gap_closed'])}")
    long61 = [r for r in table_rows if r["section"] == "long" and r["name"].startswith("r61_")
              and r["name"] != "r61_alone_x3"]
    ensemble = [r for r in table_rows if r["section"] == "ensemble"]
    for name, candidates in (("recipe 61K student, stretch: within 0.1 points of the teacher with <= 3x the epochs",
                              long61 and long61 + recipe),
                             (("recipe 61K student, stretch, with a second teacher beside the default one: within 0.1 "
                              "points of the default teacher with <= 3x the epochs"), ensemble)):
        if candidates and teachers and "test_acc" in teachers.get("teacher", {}):
            best = max(candidates, key=lambda r: r["mean"])
            behind = (teachers["teacher"]["test_acc"] - best["mean"]) * 100
            add(name, behind, behind <= 0.1, f"{best['label']} {best['mean']:.2%} vs teacher {teachers['teacher']['test_acc']:.2%}")
    pairs = [(r, by["student"]) for r in table_rows if r["section"] == "main" and r.get("gap_reference")
             and "student" in by and r["name"] != "student"]
    pairs += [(r, by["tiny_alone_x3"]) for r in table_rows if r["name"].startswith("tiny_") and r["name"] != "tiny_alone_x3"
              and "tiny_alone_x3" in by]
    if pairs:
        method, alone = max(pairs, key=lambda pair: pair[0]["mean"] - pair[1]["mean"])
        gain = (method["mean"] - alone["mean"]) * 100
        add("tiny 14K student: some method beats the student alone at equal epochs (up to 3x)", gain, gain > 0,
            f"{method['label']} ({method.get('epochs', 'base')} epochs) {method['mean']:.2%} vs alone {alone['mean']:.2%}")
    if timing:
        ratio = timing["ratio"]["kd_cached"]
        add("offline KD with cached teacher outputs <= 1.2x a plain student epoch", ratio, ratio <= 1.2,
            f"interleaved in one process: cached {ratio:.2f}x, online teacher {timing['ratio']['kd_online']:.2f}x")
        if "fm_int8_worst" in timing["ratio"]:
            r = timing["ratio"]
            add("online teacher on augmented inputs (function matching, int8 teacher) <= 1.5x a plain student epoch",
                r["fm_int8_worst"], r["fm_int8_worst"] <= 1.5,
                f"int8 teacher (fastest runtime at the batch size): tiny student {r['fm_int8']:.2f}x, recipe student {r['r61_fm_int8']:.2f}x; "
                f"eager fp32 teacher: {r['fm_eager']:.2f}x, {r['r61_fm_eager']:.2f}x")
    return out, details


def pct(x: float | None, digits: int = 0) -> str:
    return "—" if x is None else f"{x * 100:.{digits}f}%"


def markdown(data: dict[str, Any]) -> str:
    s = data["settings"]
    lines = [f"# Knowledge distillation on Fashion-MNIST{' (QUICK: not a result)' if data['quick'] else ''}", "",
             (f"Default teacher `{TEACHER[1]}` → tiny student `{STUDENT[1]}`; {s['seeds']} seed(s), {s['epochs']} epochs, "
             f"AdamW one-cycle lr {s['lr']} (TrainConfig defaults) for every row; train set {s['train_samples']} samples. "
             f"{s['workers']} worker processes x {s['threads_per_worker']} thread. Teachers:"), ""]
    order = ("teacher", "teacher2", "teacher20", "mlp_teacher")  # fixed: a JSON round trip sorts keys
    for name, t in sorted(data["teachers"].items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99):
        lines.append(f"- {name}: {t['description']}: test {pct(t.get('test_acc'), 2)}")
    lines += ["", "| Method | Test acc % (mean ± std) | Gap closed | Epoch time ÷ plain student epoch |", "|---|---|---|---|"]
    heads = {"cross": "*Cross-modal (gap vs the 14x14 student alone)*", "semi": "*Labels withheld from 80% (gap vs the 20%-label "
             "student and teacher)*", "mlp": "*Hinton-style MLP pair (gap vs the MLP student alone and the MLP teacher)*",
             "recipe": f"*The default recipe's student {RECIPE_STUDENT[1]} (~61K params), {s['epochs'] * RECIPE_SCALE} epochs "
                       "(gap vs that student alone at the same epochs)*",
             "long": "*3x schedules (gap vs the same student alone at the same epochs)*",
             "ensemble": "*Beyond the issue's pair: a second teacher (2-stage CNN) beside the default one*"}
    section = "main"
    for r in data["rows"]:
        if r["section"] != section:
            section = r["section"]
            lines.append(f"| {heads[section]} | | | |")
        ratio = "—" if r["epoch_time_ratio"] is None else f"{r['epoch_time_ratio']:.2f}x"
        ratio += "" if r["ratio_reference"] == "same worker process" else " †"
        chosen = f" [{r['chosen']}]" if r["chosen"] else ""
        gap = "— (teacher not better)" if r.get("no_gap") else pct(r["gap_closed"])
        fid = f" (agrees {r['agreement']:.1%}, KL {r['kl']:.3f})" if "kl" in r else ""
        lines.append(f"| {r['label']}{chosen} | {fmt_pm(r['test_acc'])}{fid} | {gap} | {ratio} |")
    notes = [f"- {r['label']}: {r['note']}" for r in data["rows"] if r["note"]]
    for r in data["rows"]:
        if "pseudo_label_acc" in r:
            notes.append(f"- Pseudo-label accuracy on the unlabeled 80%: {pct(statistics.fmean(r['pseudo_label_acc']), 2)}")
    lines += ["", "Notes:", *notes, "- Gap closed = (method − student alone) / (teacher − student alone), on the means.",
              "- Fidelity (Stanton et al. 2021): top-1 agreement with the teacher and mean KL(teacher ‖ student) on the test set.",
              ("- Epoch time: training epochs only (teacher outputs are cached on disk before training, one teacher pass "
              "per cached file shared by all rows); each run is divided by the plain-student epochs timed in the same "
              "worker process († where that worker ran none: all plain-student epochs).")]
    if data["selection"]:
        lines += ["", "## Hyperparameters chosen on the validation split (seed 0)", "",
                  "| Row | Candidate | Val acc | Test acc | Chosen |", "|---|---|---|---|---|"]
        for row, sel in data["selection"].items():
            for c, v in sel["candidates"].items():
                lines.append(f"| {row} | {c} | {pct(v['val_acc'], 2)} | {pct(v['test_acc'], 2)} | {'yes' if c == sel['chosen'] else ''} |")
    t = data.get("timing")
    if t:
        lines += ["", (f"## Epoch time, interleaved in one process ({t['samples']} samples, {t['threads']} thread, "
                      f"{t['warmup_rounds']} warm-up + {t['rounds']} rounds, medians)"), "",
                  "| Run | Epoch (s) | ÷ the same student's plain epoch |", "|---|---|---|"]
        order = ("student", "kd_cached", "kd_online", "fm_int8", "fm_eager", "r61_student", "r61_fm_int8", "r61_fm_eager")
        for k in sorted(t["median_seconds"], key=lambda k: order.index(k) if k in order else len(order)):
            ref = "r61_student" if k.startswith("r61_") else "student"
            lines.append(f"| {k} | {t['median_seconds'][k]:.2f} | {t['ratio'][k]:.2f}x (÷ {ref}) |")
        if t["teacher_pass_ratio"] is not None:
            lines.append(f"\nBuilding the cache (one teacher pass, paid once) took {t['teacher_pass_ratio']:.2f} plain student epochs.")
    lines += ["", "## Targets", "", "| Target | Value | Result | Met |", "|---|---|---|---|"]
    details = data.get("target_details", {})
    for g in data["targets"]:
        lines.append(f"| {g['target']} | {g['value']:.3g} | {details.get(g['target'], '')} | {'MET' if g['met'] else 'NOT MET'} |")
    if data["errors"]:
        lines += ["", "## Failed tasks", "", *[f"- {k}: {v.strip().splitlines()[-1]}" for k, v in data["errors"].items()]]
    lines += ["", (f"Machine: {data['machine']['cpu']}, {data['machine']['cores']} cores, torch {data['machine']['torch']}, "
                  f"commit {data['machine']['commit'][:10]}; wall time {data['wall_seconds'] / 60:.1f} min.")]
    return "\n".join(lines)


def main() -> int:
    parser = bench_arguments(__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=None, help="(development) seeds per row")
    parser.add_argument("--epochs", type=int, default=None, help="(development) epochs per run")
    parser.add_argument("--limit", type=int, default=None, help="(development) cap on every split")
    parser.add_argument("--rows", type=lambda s: s.split(","), default=None, help="(development) only these rows")
    parser.add_argument("--merge", action="store_true",
                        help="with --rows: re-measure those rows (and the teachers they need) into the stored distill.json")
    parser.add_argument("--timing", action="store_true",
                        help="with --merge: also re-measure the interleaved epoch timing (a full run always does)")
    parser.add_argument("--render", action="store_true",
                        help="rewrite distill.md (and the derived gaps and targets) from the stored distill.json")
    args = parser.parse_args()
    if args.timing and args.rows is None:  # the timing alone, into the stored results
        args.rows, args.merge = [], True
    if args.merge and (args.rows is None or args.quick):
        parser.error("--merge needs --rows (the rows to re-measure) or --timing, and a full-size run")
    if args.timing and not args.merge:
        parser.error("--timing goes with --merge: a full run measures the timing anyway")
    if args.render:
        return render(result_dir(args))
    args.seeds = args.seeds or (1 if args.quick else 3)
    args.epochs = args.epochs or (1 if args.quick else 6)
    args.limit = args.limit or (600 if args.quick else None)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f}s] {message}", flush=True)

    scratch = Path(tempfile.mkdtemp(prefix="slimkit-bench-distill-"))
    base = scratch if args.quick or args.limit else ROOT / "runs" / "bench-distill"
    dirs = {"teacher": str(base / "teacher"), "teacher2": str(base / "teacher2-cnn-2stage"),
            "teacher20": str(base / "teacher-20pct-labels"), "mlp_teacher": str(base / "mlp-1200-1200"),
            "students": str(base / "students"), "cache": str(base / "teacher-cache")}
    try:
        tasks, table = plan(args, dirs)
        log(f"{len(tasks)} tasks on {args.workers} workers; teacher from {dirs['teacher']}")
        results, errors, choices = run_pool(tasks, table, args, dirs, log)
        timing = None
        if "teacher" in results and (args.timing or not args.merge):  # a plain merge keeps the stored timing
            log("interleaved epoch timing")
            timing = interleaved_timing(dirs["teacher"], threads=max(1, args.threads // args.workers), limit=args.limit,
                                        samples=600 if args.quick else 10_000, rounds=1 if args.quick else 3,
                                        warmup=0 if args.quick else 1)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    described = {"teacher": f"default teacher {TEACHER[1]} ({dirs.get('teacher_source', dirs['teacher'])})",
                 "teacher2": f"second teacher {SECOND_TEACHER[1]}, {args.epochs} epochs",
                 "teacher20": "default teacher architecture trained on the 20% labeled part only",
                 "mlp_teacher": f"MLP {MLP_TEACHER[1]}, {args.epochs if args.limit else MLP_TEACHER_EPOCHS} epochs"}
    teachers = {k: {"description": d, **{m: results[k][m] for m in ("test_acc", "val_acc") if m in results.get(k, {})}}
                for k, d in described.items()}
    table_rows = summarize(table, results, choices, args)
    add_gaps(table_rows, table, teachers)
    config = TrainConfig(epochs=args.epochs)
    from slimkit.data import DataConfig

    data = {
        "quick": args.quick,
        "settings": {"seeds": args.seeds, "epochs": args.epochs, "limit": args.limit, "lr": config.lr, "train": config.to_dict(),
                     "batch_size": DataConfig().batch_size, "workers": args.workers,
                     "threads_per_worker": max(1, args.threads // args.workers),
                     "train_samples": 54_000 if args.limit is None else args.limit, "dkd_warmup_epochs": WARMUP},
        "teachers": teachers, "rows": table_rows, "selection": choices, "timing": timing,
        "errors": errors, "wall_seconds": time.perf_counter() - started,
    }
    data["targets"], data["target_details"] = targets(table_rows, timing, teachers)
    from _common import machine_info

    data["machine"] = machine_info()
    if args.merge:
        # the measured rows outlive a merge that fails (kept beside the run's models)
        (base / "unmerged.json").write_text(json.dumps(data, indent=2, default=str))
        data = merge(result_dir(args) / "distill.json", data, rows(dirs))
    path = write_results("distill", data, markdown(data), targets=data["targets"], out_dir=result_dir(args))
    log(f"wrote {path} and {path.with_suffix('.md')}")
    print(markdown(data))
    return 1 if errors else 0


def merge(path: Path, new: dict[str, Any], spec: list[Row]) -> dict[str, Any]:
    """The stored results with ``new``'s rows and teachers put in (rows keep the stored order);
    gaps and targets are derived again. A merged row without a plain-student run beside it gets
    its epoch-time ratio against the stored student row's epochs (marked †)."""
    import json

    data = json.loads(path.read_text())
    fresh = {r["name"]: r for r in new["rows"]}
    def model_of(row: dict[str, Any]) -> str:  # as JSON: a stored row's tuples came back as lists
        return json.dumps(row["params"].get("model", STUDENT), sort_keys=True)

    plain = {model_of(r): r for r in data["rows"] if r["name"] in PLAIN_ROWS}
    for r in fresh.values():
        student = plain.get(model_of(r))
        if r["epoch_time_ratio"] is None and student is not None:
            ref = statistics.fmean(s for run in student["epoch_seconds"] for s in run)
            r["epoch_time_ratio"] = statistics.fmean(s for run in r["epoch_seconds"] for s in run) / ref
            r["ratio_reference"] = "stored student row"
    names = [r["name"] for r in data["rows"]]
    data["rows"] = [fresh.get(r["name"], r) for r in data["rows"]] + [r for n, r in fresh.items() if n not in names]
    order = {row.name: i for i, row in enumerate(spec)}  # a new row goes where the table defines it (its section)
    for r in data["rows"]:  # labels and notes are the table's wording (code), not measurements
        if r["name"] in order:
            r["label"], r["note"] = spec[order[r["name"]]].label, spec[order[r["name"]]].note
    data["rows"].sort(key=lambda r: order.get(r["name"], len(order)))
    data["selection"] = {**data.get("selection", {}), **new.get("selection", {})}
    for key, teacher in new["teachers"].items():
        if "test_acc" in teacher:
            data["teachers"][key] = teacher
    if new["timing"] is not None:  # re-measured (--timing): the new one replaces the stored one
        data["timing"] = new["timing"]
    add_gaps(data["rows"], spec, data["teachers"])
    data["targets"], data["target_details"] = targets(data["rows"], data["timing"], data["teachers"])
    data["errors"] = {**data.get("errors", {}), **new["errors"]}
    data.setdefault("merged", []).append({"rows": sorted(fresh), "machine": new["machine"],
                                          "wall_seconds": new["wall_seconds"]})
    return data


def render(folder: Path) -> int:
    """Re-derive gaps and targets from the measured figures in ``folder/distill.json`` with the
    current rules, and write the Markdown again (nothing is re-measured)."""
    import json

    data = json.loads((folder / "distill.json").read_text())
    compute_gaps(data["rows"], data["teachers"])
    data["targets"], data["target_details"] = targets(data["rows"], data["timing"], data["teachers"])
    # data keeps its "machine": the machine and commit of the measurement, not of this rewrite
    write_results("distill", data, markdown(data), targets=data["targets"], out_dir=folder)
    print(markdown(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
