"""Dynamic inference on Fashion-MNIST: early exit and channel gating on the default teacher CNN.

1. Early exit: pooled exit heads after ``features.0`` and ``features.1``, trained by
   self-distillation from the final head (the network itself frozen, so the network without
   exits is exactly the teacher); thresholds calibrated on the validation split to 0.2, 0.5 and
   1 point of accuracy; measured on the test split: accuracy against the same network without
   exits, exit rates, mean MACs, and mean/p90 latency per sample at batch 1 (real test samples,
   static and dynamic alternating, 1 thread) and per batch of 256. Exit heads are trained with
   ``--seeds`` seeds (mean ± std). The same exits deployed as ONNX segments with the small
   runner are timed against the whole network in ONNX Runtime.
2. Channel gating (Feature Boosting and Suppression) at densities 0.5 and 0.75, fine-tuned by KD
   from the teacher: test accuracy, MACs actually run per sample, and latency at batch 1 and 256
   against the ungated teacher.

    flock /tmp/slimkit-bench.lock .venv/bin/python bench/dynamic.py
    .venv/bin/python bench/dynamic.py --quick      # 600 samples, a small CNN (< 1 minute)

Target (issue 19): >= 1.5x lower mean latency at batch 1 for at most 0.5 points lost.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import bench_arguments, dumps, fmt_pm, mean_std, result_dir, stamp, target, write_results

BUDGETS = (0.2, 0.5, 1.0)
EXITS = ["features.0", "features.1"]


def log(started: float, message: str) -> None:
    print(f"[{time.perf_counter() - started:6.0f}s] {message}", flush=True)


def get_teacher(args, loaders):
    from slimkit.models import DEFAULT_TEACHER, build_model
    from slimkit.train import TrainConfig, train

    if args.quick:
        torch.manual_seed(0)
        teacher = build_model(DEFAULT_TEACHER[0], **{**DEFAULT_TEACHER[1], "channels": (8, 16, 32), "hidden": 32})
        train(teacher, loaders.train, config=TrainConfig(epochs=2, progress=False))
        return teacher.eval(), "scratch (quick)"
    from _common import default_pair

    teacher, _, _ = default_pair()
    return teacher.eval(), "bench._common.default_pair (6 epochs)"


def early_exit(args, teacher, loaders, started: float) -> dict[str, Any]:
    from slimkit.dynamic import EarlyExit, calibrate, collect, latency_against_static, make_dynamic, simulate
    from slimkit.train import TrainConfig

    seeds: list[dict[str, Any]] = []
    nets = []
    for seed in range(args.seeds):
        config = EarlyExit(exits=EXITS, head="pool", train=TrainConfig(epochs=args.exit_epochs, lr=3e-3, schedule="cosine",
                                                                         seed=seed, progress=False))
        began = time.perf_counter()
        net = make_dynamic(teacher, config, loaders.train, val_loader=loaders.val).eval()
        val, test = collect(net, loaders.val), collect(net, loaders.test, timed=False)
        rows = {}
        for budget in BUDGETS:
            calibrated = calibrate(val, "accuracy_drop", budget, margin=config.margin)  # the default: 1 SE
            on_test = simulate(test, calibrated["thresholds"])
            net.set_thresholds(calibrated["thresholds"])
            timed = latency_against_static(net, loaders.test, samples=args.samples, batch=256, batches=args.batches,
                                           warmup=args.warmup, threads=1)
            static_acc = float(test.correct[:, -1].mean())
            rows[str(budget)] = {
                "thresholds": calibrated["thresholds"], "val_drop_points": calibrated["drop_points"],
                "test_accuracy": on_test["accuracy"], "static_test_accuracy": static_acc,
                "test_drop_points": 100 * (static_acc - on_test["accuracy"]), "exit_rates": on_test["rates"],
                "macs_share": on_test["mean_macs"] / test.static_macs, "latency": timed,
            }
            log(started, f"seed {seed} budget {budget}: drop {rows[str(budget)]['test_drop_points']:.2f} points, "
                         f"rates {[round(r, 3) for r in on_test['rates']]}, b1 speedup {timed['batch1']['speedup_mean']:.2f}x")
        seeds.append({"seed": seed, "seconds": time.perf_counter() - began,
                      "head_accuracy": {name: float(test.correct[:, i].mean()) for i, name in enumerate([*EXITS, "final"])},
                      "segment_macs": test.segment_macs, "head_macs": test.head_macs, "budgets": rows})
        nets.append(net)
    summary = {}
    for budget in BUDGETS:
        per = [s["budgets"][str(budget)] for s in seeds]
        summary[str(budget)] = {
            "test_drop_points": [p["test_drop_points"] for p in per],
            "speedup_b1": [p["latency"]["batch1"]["speedup_mean"] for p in per],
            "speedup_b256": [p["latency"]["batch256"]["speedup_mean"] for p in per if "batch256" in p["latency"]],
            "macs_share": [p["macs_share"] for p in per],
            "exit_rates": [p["exit_rates"] for p in per],
        }
    return {"seeds": seeds, "summary": summary, "onnx": onnx_section(args, nets[0], seeds[0], loaders, started)}


def onnx_section(args, net, first: dict[str, Any], loaders, started: float) -> dict[str, Any]:
    """The 0.5-point exits of the first seed as ONNX segments + runner, against the whole network in ORT."""
    from slimkit.dynamic import OnnxEarlyExit, export_exits, per_sample_latency, samples_of
    from slimkit.export import export_onnx, load_onnx

    net.set_thresholds(first["budgets"]["0.5"]["thresholds"])
    folder = Path(tempfile.mkdtemp(prefix="slimkit-bench-dynamic-"))
    example = next(iter(loaders.test))[0][:2]
    export_exits(net, folder / "exits", example)
    export_onnx(net.model, folder / "static.onnx", example)
    runner, static = OnnxEarlyExit(folder / "exits", threads=1), load_onnx(folder / "static.onnx")
    inputs = samples_of(loaders.test, args.samples)
    with torch.no_grad():
        timed = per_sample_latency({"static": static, "dynamic": runner}, inputs, warmup=args.warmup, threads=1)
    right = total = 0
    for x, y in loaders.test:
        right += int((runner(x).argmax(1) == y).sum())
        total += len(y)
    timed["speedup_mean"] = timed["static"]["mean_ms"] / timed["dynamic"]["mean_ms"]
    log(started, f"ONNX runner at 0.5 points: b1 speedup {timed['speedup_mean']:.2f}x against ORT static")
    return {"budget": 0.5, "test_accuracy": right / total, "batch1": timed, "files": sorted(p.name for p in (folder / "exits").iterdir())}


def gating(args, teacher, loaders, started: float) -> dict[str, Any]:
    from slimkit.distillation import RecoveryConfig
    from slimkit.dynamic import ChannelGating, make_dynamic, per_sample_latency, samples_of
    from slimkit.evaluate import count_macs
    from slimkit.train import evaluate_loss_acc

    rows = {}
    inputs = samples_of(loaders.test, args.samples)
    static_acc = evaluate_loss_acc(teacher, loaders.test)[1]
    for density in args.densities:
        accuracies, timings = [], []
        for seed in range(args.seeds):
            config = ChannelGating(density=density, recover=RecoveryConfig(epochs=args.gate_epochs, lr=1e-3, seed=seed))
            gated = make_dynamic(teacher, config, loaders.train, val_loader=loaders.val).eval()
            accuracies.append(evaluate_loss_acc(gated, loaders.test)[1])
            with torch.no_grad():
                timings.append(per_sample_latency({"ungated": teacher, "gated": gated}, inputs, warmup=args.warmup,
                                                  threads=1))
        few = inputs[:32]
        macs = sum(count_macs(gated, x) for x in few) / len(few)
        with torch.no_grad():  # real batches: the union of the samples' channels is what runs
            large = per_sample_latency({"ungated": teacher, "gated": gated}, samples_of(loaders.test, args.batches, size=256),
                                       warmup=1, threads=1)
        rows[str(density)] = {
            "test_accuracy": accuracies, "static_test_accuracy": static_acc,
            "drop_points": [100 * (static_acc - a) for a in accuracies],
            "macs_share": macs / count_macs(teacher, few[0]),
            "batch1": timings, "speedup_b1": [t["ungated"]["mean_ms"] / t["gated"]["mean_ms"] for t in timings],
            "speedup_b256": large["ungated"]["mean_ms"] / large["gated"]["mean_ms"],
        }
        log(started, f"gating density {density}: drop {fmt_pm(rows[str(density)]['drop_points'], 1)} points, "
                     f"b1 speedup {fmt_pm(rows[str(density)]['speedup_b1'], 1)}x, MACs {rows[str(density)]['macs_share']:.2f}")
    return {"densities": rows}


def markdown(data: dict[str, Any]) -> str:
    ee, gate = data["early_exit"], data["gating"]
    title = f"# Dynamic inference on Fashion-MNIST{' (QUICK: not a result)' if data['quick'] else ''}"
    lines = [title, "", (f"Teacher: {data['teacher']['source']}, test accuracy {data['teacher']['test_acc']:.4f}. "
             f"Latency: real test samples, static and dynamic alternating, 1 thread, {data['settings']['samples']} "
             "samples at batch 1; batch 256 over whole test batches. Speedup = static mean / dynamic mean."), "",
             (f"## Early exit (exits after {', '.join(EXITS)}; pool heads, {data['settings']['exit_epochs']} epochs of "
             f"self-distillation, network frozen; {len(ee['seeds'])} seed(s); thresholds calibrated on the validation "
             f"split with the default margin of {data['settings']['margin']} standard error(s) of the drop)"), "",
             ("| budget (points, on val) | test drop (points) | exit rates (exit0 / exit1 / final) | mean MACs | "
             "b1 speedup | b256 speedup |"), "|---|---|---|---|---|---|"]
    for budget, row in ee["summary"].items():
        rates = [sum(r[i] for r in row["exit_rates"]) / len(row["exit_rates"]) for i in range(len(EXITS) + 1)]
        lines.append(f"| {budget} | {fmt_pm(row['test_drop_points'], 1)} | {' / '.join(f'{r:.2f}' for r in rates)} | "
                     f"{fmt_pm(row['macs_share'], 100, 1)}% | {fmt_pm(row['speedup_b1'], 1)}x | "
                     f"{fmt_pm(row['speedup_b256'], 1) if row['speedup_b256'] else 'n/a'}x |")
    first = ee["seeds"][0]
    lines += ["", "Head accuracy on the whole test split (seed 0): " + ", ".join(
        f"{k} {v:.4f}" for k, v in first["head_accuracy"].items()) + f". Segment MACs {first['segment_macs']}, "
        f"head MACs {first['head_macs']}.", "",
        ("Batch-1 latency at the 0.5-point budget (seed 0): static mean "
        f"{first['budgets']['0.5']['latency']['batch1']['static']['mean_ms']:.3f} ms (p90 "
        f"{first['budgets']['0.5']['latency']['batch1']['static']['p90_ms']:.3f}), dynamic mean "
        f"{first['budgets']['0.5']['latency']['batch1']['dynamic']['mean_ms']:.3f} ms (p90 "
        f"{first['budgets']['0.5']['latency']['batch1']['dynamic']['p90_ms']:.3f})."), ""]
    onnx = ee["onnx"]
    lines += [(f"ONNX segments + runner (0.5-point thresholds): test accuracy {onnx['test_accuracy']:.4f}; batch-1 mean "
              f"{onnx['batch1']['dynamic']['mean_ms']:.3f} ms against {onnx['batch1']['static']['mean_ms']:.3f} ms for the "
              f"whole network in ONNX Runtime ({onnx['batch1']['speedup_mean']:.2f}x)."), "",
              f"## Channel gating (FBS, {data['settings']['gate_epochs']} epochs of KD from the teacher)", "",
              "| density | test drop (points) | MACs run per sample | b1 speedup | b256 speedup |", "|---|---|---|---|---|"]
    for density, row in gate["densities"].items():
        lines.append(f"| {density} | {fmt_pm(row['drop_points'], 1)} | {100 * row['macs_share']:.1f}% | "
                     f"{fmt_pm(row['speedup_b1'], 1)}x | {row['speedup_b256']:.2f}x |")
    lines += ["", "## Targets", "", "| target | value | met |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['value']:.3f} | {t['met']} |" for t in data["targets"]]
    lines += ["", f"Total benchmark time: {data['seconds'] / 60:.1f} min."]
    return "\n".join(lines)


def main() -> int:
    from slimkit.data import DataConfig, load_data
    from slimkit.dynamic import EarlyExit
    from slimkit.train import evaluate_loss_acc

    parser = bench_arguments(__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--exit-epochs", type=int, default=4)
    parser.add_argument("--gate-epochs", type=int, default=2)
    parser.add_argument("--samples", type=int, default=2000, help="test samples timed at batch 1")
    parser.add_argument("--batches", type=int, default=10, help="batches of 256 timed")
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.exit_epochs, args.gate_epochs, args.samples, args.batches, args.warmup = 1, 1, 1, 60, 1, 5
    args.densities = (0.5,) if args.quick else (0.5, 0.75)
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    loaders = load_data(DataConfig(name="fashion-mnist", limit=600 if args.quick else None))
    teacher, source = get_teacher(args, loaders)
    log(started, f"teacher {source}")
    ee = early_exit(args, teacher, loaders, started)
    gate = gating(args, teacher, loaders, started)
    at = ee["summary"]["0.5"]
    speedup, drop = mean_std(at["speedup_b1"])[0], max(at["test_drop_points"])
    targets = [
        target("early exit: mean latency at batch 1, static / dynamic, at the 0.5-point budget (>= 1.5x, test drop <= 0.5)",
               speedup, speedup >= 1.5 and drop <= 0.5),
        target("early exit: worst test accuracy drop at the 0.5-point budget (points, <= 0.5)", drop, drop <= 0.5),
    ]
    data = {
        "quick": args.quick,
        "settings": {"seeds": args.seeds, "exit_epochs": args.exit_epochs, "gate_epochs": args.gate_epochs,
                     "samples": args.samples, "batches": args.batches, "threads": args.threads, "latency_threads": 1,
                     "exits": EXITS, "budgets": list(BUDGETS), "densities": list(args.densities),
                     "margin": EarlyExit().margin},
        "teacher": {"source": source, "test_acc": evaluate_loss_acc(teacher, loaders.test)[1]},
        "early_exit": stamp(ee), "gating": stamp(gate), "seconds": time.perf_counter() - started,
    }
    data["targets"] = targets
    out = result_dir(args)
    write_results("dynamic", data, markdown(data), targets=targets, out_dir=out)
    log(started, f"results in {out}")
    print(dumps({"targets": targets}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
