"""Deep Compression (LeNet-300-100, LeNet-5), SVD/Tucker/CP factorization and lightweight
conversion of the default teacher, on Fashion-MNIST.

    python bench/factorize_share.py --threads 1   # full size (about 20 minutes on one core)
    python bench/factorize_share.py --quick       # digits, tiny models, under a minute
"""

from __future__ import annotations

import copy
import time

import torch
from _common import ROOT, bench_arguments, fmt_pm, mean_std, result_dir, write_results
from torch.utils.data import DataLoader, Subset

from slimkit.data import DataConfig, load_data
from slimkit.evaluate import (
    accuracy,
    count_macs,
    count_params,
    measure_latency,
    predict,
)
from slimkit.factorize import CP, SVD, Tucker, factorize
from slimkit.models import DEFAULT_TEACHER, build_model
from slimkit.rundir import load_run_model, read_run, write_run
from slimkit.share import DeepCompressionConfig, ShareConfig, deep_compress
from slimkit.train import TrainConfig, Trainer
from slimkit.transform import LightenConfig, fuse, layer_geometry, lighten, recover_from

CACHE = ROOT / "runs" / "bench-factorize-share"
# Han et al.'s nets, per-layer pruning and bit widths. LeNet-5 has the widths of the Caffe version they
# used (conv 20-50, fc 500), not the classic 6-16-120-84; slimkit's first conv pads, so it holds 656K
# weights rather than 431K. LeNet-300-100 keeps 8 % of its fc weights
# with 4-bit shared values (6 bits for the logits layer); LeNet-5 prunes conv 34/88 % and fc 92/81 %,
# with 8-bit convs and 5-bit fc layers.
DC_PLANS = {
    "LeNet-300-100": ("mlp", {}, {"features.0.fc": 0.92, "features.1.fc": 0.91, "classifier.out": 0.74},
                      ShareConfig(bits=4, bits_by_layer={"classifier.*": 6})),
    "LeNet-5 (20-50-500)": ("lenet5", {"channels": [20, 50], "hidden": [500]},
                {"features.0.conv": 0.34, "features.1.conv": 0.88, "classifier.fc1": 0.92, "classifier.out": 0.81},
                ShareConfig(bits=5, bits_by_layer={"features.*": 8})),
}
# SVD leaves the 1-channel stem and the 10-way logits layer alone: their ranks are tiny already.
METHODS = {"svd": (SVD, {"allocation": "energy", "exclude": ["features.0.conv", "classifier.out"]}),
           "tucker": (Tucker, {"allocation": "energy"}), "cp": (CP, {})}


def test_accuracy(model, loaders) -> float:
    return float(accuracy(*predict(model, loaders.test).pair()))


def baseline(name: str, knobs: dict, loaders, epochs: int, size: int, quick: bool):
    """A trained model (cached in runs/ for the full benchmark)."""
    config = TrainConfig(epochs=epochs, progress=False)
    folder = CACHE / "-".join([name, *(f"{k}{v}" for k, v in knobs.items())]).replace(" ", "")
    if not quick and read_run(folder).get("train") == config.to_dict():
        return load_run_model(folder)
    torch.manual_seed(0)
    model = build_model(name, **knobs, input_size=size, num_classes=loaders.splits.num_classes)
    Trainer(model, config).fit(loaders.train)
    if not quick:
        write_run(folder, model, {"train": config.to_dict(), "dataset": loaders.splits.name})
    return model


def subset_loader(loaders, samples: int | None):
    """The train loader over its first ``samples`` examples (short fine-tunes of the teacher)."""
    dataset = loaders.train.dataset
    if samples is None or samples >= len(dataset):
        return loaders.train
    return DataLoader(Subset(dataset, range(samples)), batch_size=loaders.train.batch_size, shuffle=True)


def deploy(model):
    """The form one would ship for CPU inference: BN folded, channels-last memory."""
    return fuse(copy.deepcopy(model).eval()).to(memory_format=torch.channels_last)


def speedups(reference, candidate, x, batches, repeats) -> dict:
    out = {}
    for form, prep in (("eager", lambda m: m.eval()), ("deployed", deploy)):
        lat = measure_latency({"a": prep(reference), "b": prep(candidate)}, x, batch_sizes=batches, repeats=repeats,
                              warmup=3, memory=False)
        out[form] = {b: lat["a"][b]["median_ms"] / lat["b"][b]["median_ms"] for b in batches}
    return out


def layer_speedup(teacher, model, report, x, batch, repeats) -> float:
    """Speedup of the factorized layers alone (sum of their medians), at ``batch``."""
    names = [layer["layer"] for layer in report.layers]
    geo = layer_geometry(teacher, names, x)
    total = {"a": 0.0, "b": 0.0}
    for name in names:
        old, new = teacher.get_submodule(name), model.get_submodule(name)
        shape = (1, old.in_channels, *geo[name].in_hw) if hasattr(old, "in_channels") else (1, old.in_features)
        lat = measure_latency({"a": old, "b": new}, torch.zeros(shape), batch_sizes=(batch,), repeats=repeats,
                              warmup=3, memory=False)
        for k in total:
            total[k] += lat[k][batch]["median_ms"]
    return total["a"] / total["b"]


def run_deep_compression(loaders, opts) -> dict:
    results = {}
    for label, (name, knobs, sparsity, share) in DC_PLANS.items():
        base = baseline(name, knobs, loaders, opts["base_epochs"], opts["size"], opts["quick"])
        config = DeepCompressionConfig(sparsity=sparsity, share=share, prune_epochs=opts["prune_epochs"],
                                       share_epochs=opts["share_epochs"])
        runs = [deep_compress(copy.deepcopy(base), config, train_loader=loaders.train, eval_loader=loaders.test,
                              seed=seed).stages for seed in opts["seeds"]]
        stages = []
        for i, first in enumerate(runs[0]):
            accs = [r[i]["accuracy"] for r in runs]
            sizes = [r[i]["bytes"] for r in runs]
            stages.append({"stage": first["stage"], "bytes": mean_std(sizes)[0], "ratio": runs[0][0]["bytes"] / mean_std(sizes)[0],
                           "nonzero": first["nonzero"],
                           "accuracy": accs, "accuracy_mean": mean_std(accs)[0]})
        final, fp32 = stages[-1], stages[0]
        results[label] = {"model": name, "config": config.to_dict(), "stages": stages,
                          "target_met": final["ratio"] >= 40 and fp32["accuracy_mean"] - final["accuracy_mean"] <= 0.003}
    return results


def run_factorization(teacher, loaders, opts) -> dict:
    x = torch.zeros(1, *loaders.splits.input_shape)
    base_acc, base_macs, base_params = test_accuracy(teacher, loaders), count_macs(teacher, x), count_params(teacher)
    rows = []
    for method, (kind, extra) in METHODS.items():
        for target in (0.5, 0.25):
            options = {**extra, "iterations": opts["cp_iterations"]} if method == "cp" else extra
            start = time.perf_counter()
            fact = factorize(copy.deepcopy(teacher), kind(mac_ratio=target, round_to=8, **options), example_inputs=x)
            seconds = time.perf_counter() - start
            before = test_accuracy(fact, loaders)
            tuned = [recover_from(copy.deepcopy(fact), teacher, opts["ft_loader"], epochs=opts["ft_epochs"], seed=s)
                     for s in opts["seeds_ft"]]
            accs = [test_accuracy(m, loaders) for m in tuned]
            report = fact.factorize_report
            rows.append({"method": method, "target_macs": target, "ranks": {r["layer"]: r["ranks"] for r in report.layers},
                         "skipped": report.skipped, "decompose_s": seconds,
                         "macs_ratio": count_macs(fact, x) / base_macs, "params_ratio": count_params(fact) / base_params,
                         "acc_before_ft": before, "acc_after_ft": accs, "acc_after_ft_mean": mean_std(accs)[0],
                         "speedup": speedups(teacher, tuned[0], x, opts["batches"], opts["repeats"]),
                         "layer_speedup": layer_speedup(teacher, tuned[0], report, x, opts["batches"][-1], opts["repeats"])})
    return {"teacher_accuracy": base_acc, "teacher_macs": base_macs, "teacher_params": base_params, "rows": rows,
            "target_met": any(r["method"] in ("tucker", "cp") and r["target_macs"] == 0.5
                              and base_acc - r["acc_after_ft_mean"] <= 0.005
                              and r["speedup"]["eager"][opts["batches"][-1]] >= 1.5 for r in rows)}


def run_lightweight(teacher, loaders, opts) -> dict:
    x = torch.zeros(1, *loaders.splits.input_shape)
    models = [lighten(copy.deepcopy(teacher), LightenConfig(epochs=opts["ft_epochs"], seed=s), train_loader=opts["ft_loader"])
              for s in opts["seeds_ft"]]
    accs = [test_accuracy(m, loaders) for m in models]
    return {"converted": [c["layer"] for c in models[0].lighten_report["converted"]],
            "skipped": models[0].lighten_report["skipped"], "params_ratio": count_params(teacher) / count_params(models[0]),
            "macs_ratio": count_macs(teacher, x) / count_macs(models[0], x), "accuracy": accs,
            "accuracy_mean": mean_std(accs)[0], "teacher_accuracy": test_accuracy(teacher, loaders),
            "speedup": speedups(teacher, models[0], x, opts["batches"], opts["repeats"])}


def _dc_table(results: dict) -> list[str]:
    rows = ["| model | stage | bytes | x smaller than fp32 | nonzero weights | test accuracy % |", "|---|---|---|---|---|---|"]
    for label, res in results.items():
        rows += [f"| {label} | {s['stage']} | {s['bytes']:,.0f} | {s['ratio']:.1f} | {s['nonzero']:,} | "
                 f"{fmt_pm(s['accuracy'])} |" for s in res["stages"]]
    verdicts = ", ".join(
        f"{k} **{'met' if v['target_met'] else 'not met'}** ({v['stages'][-1]['ratio']:.1f}x, "
        f"{(v['stages'][0]['accuracy_mean'] - v['stages'][-1]['accuracy_mean']) * 100:.2f} points lost)"
        for k, v in results.items())
    return [*rows, "", f"Target (>= 40x smaller, <= 0.3 points lost): {verdicts}."]


def _factorization_table(fact: dict, b: list[int]) -> list[str]:
    head = (f"| method | MACs kept | params kept | acc. before FT % | acc. after FT % | speedup eager b{b[0]} / b{b[-1]} "
            f"| deployed b{b[0]} / b{b[-1]} | layers b{b[-1]} |")
    rows = [head, "|---|---|---|---|---|---|---|---|"]
    for r in fact["rows"]:
        e, d = r["speedup"]["eager"], r["speedup"]["deployed"]
        rows.append(f"| {r['method']} @ {r['target_macs']} | {r['macs_ratio']:.3f} | {r['params_ratio']:.3f} | "
                    f"{r['acc_before_ft'] * 100:.2f} | {fmt_pm(r['acc_after_ft'])} | {e[b[0]]:.2f} / {e[b[-1]]:.2f} | "
                    f"{d[b[0]]:.2f} / {d[b[-1]]:.2f} | {r['layer_speedup']:.2f} |")
    verdict = "met" if fact["target_met"] else "not met"
    return [*rows, "", f"Target (Tucker or CP at 2x fewer MACs, <= 0.5 points lost, >= 1.5x faster): **{verdict}**."]


def _light_table(light: dict, b: list[int]) -> list[str]:
    e, d = light["speedup"]["eager"], light["speedup"]["deployed"]
    skipped = "; ".join(f"{s['layer']} ({s['reason'].split(':')[0]})" for s in light["skipped"])
    head = (f"| params x smaller | MACs x smaller | speedup eager b{b[0]} / b{b[-1]} | deployed b{b[0]} / b{b[-1]} "
            f"| accuracy % (teacher {light['teacher_accuracy']:.2%}) |")
    row = (f"| {light['params_ratio']:.2f} | {light['macs_ratio']:.2f} | {e[b[0]]:.2f} / {e[b[-1]]:.2f} | "
           f"{d[b[0]]:.2f} / {d[b[-1]]:.2f} | {fmt_pm(light['accuracy'])} |")
    return [f"Converted {', '.join(light['converted'])}; skipped: {skipped}.", "", head, "|---|---|---|---|---|", row]


def markdown(data: dict) -> str:
    b, fact = data["options"]["batches"], data["factorization"]
    intro = (f"{data['dataset']} test set; {data['machine_threads']} thread(s); `{data['command']}`; "
             f"{data['seconds']:.0f} s in all.")
    teacher = (f"Teacher: {fact['teacher_accuracy']:.2%} test accuracy, {fact['teacher_macs']:,} MACs. Speedups are "
               "teacher/candidate latency medians (A B alternating), eager as built and deployed (BN folded, "
               "channels-last); 'layers' times the factorized layers alone.")
    lines = ["# Deep Compression, low-rank factorization and lightweight conversion", "", intro, "",
             "## Deep Compression (prune -> cluster -> Huffman)", "", *_dc_table(data["deep_compression"]), "",
             "## SVD, Tucker-2 and CP on the default teacher", "", teacher, "", *_factorization_table(fact, b), "",
             "## Lightweight (depthwise-separable) conversion of the teacher", "", *_light_table(data["lightweight"], b),
             "", *data.get("notes", [])]
    return "\n".join(lines)


def main() -> None:
    parser = bench_arguments(__doc__)
    parser.add_argument("--seeds", type=int, default=3, help="seeds for the Deep Compression fine-tunes")
    parser.add_argument("--ft-seeds", type=int, default=1, help="seeds for the teacher fine-tunes")
    parser.add_argument("--ft-samples", type=int, default=20000, help="training samples seen by each teacher fine-tune")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    quick = args.quick
    opts = {"quick": quick, "size": 8 if quick else 28, "base_epochs": 1 if quick else 8,
            "prune_epochs": 1 if quick else 3, "share_epochs": 1, "ft_epochs": 1, "cp_iterations": 3 if quick else 50,
            "seeds": list(range(1 if quick else args.seeds)), "seeds_ft": list(range(1 if quick else args.ft_seeds)),
            "batches": [1, 32] if quick else [1, 256], "repeats": 3 if quick else 20,
            "ft_samples": None if quick else args.ft_samples}
    loaders = load_data(DataConfig(name="digits" if quick else "fashion-mnist", batch_size=128))
    if quick:
        torch.manual_seed(0)
        teacher = build_model(DEFAULT_TEACHER[0], **DEFAULT_TEACHER[1], input_size=8)
        Trainer(teacher, TrainConfig(epochs=1, progress=False)).fit(loaders.train)
    elif (ROOT / "runs" / "quickstart" / "teacher" / "run.json").is_file():
        teacher = load_run_model(ROOT / "runs" / "quickstart" / "teacher")
    else:
        from _common import default_pair

        teacher = default_pair()[0]
    teacher.eval()
    opts["ft_loader"] = subset_loader(loaders, opts["ft_samples"])
    data = {"quick": quick, "options": opts, "machine_threads": args.threads, "dataset": loaders.splits.name,
            "command": "python bench/factorize_share.py" + (" --quick" if quick else f" --threads {args.threads}"),
            "deep_compression": run_deep_compression(loaders, opts),
            "factorization": run_factorization(teacher, loaders, opts),
            "lightweight": run_lightweight(teacher, loaders, opts)}
    data["seconds"] = time.perf_counter() - start
    del opts["ft_loader"]
    seeds = (f"Deep Compression accuracy is mean ± std over {len(opts['seeds'])} fine-tune seed(s) from one baseline; "
             f"teacher fine-tunes use {len(opts['seeds_ft'])} seed(s), one pass over "
             f"{opts['ft_samples'] or 'all'} training samples distilling from the teacher (time budget). "
             "Ranks are rounded to multiples of 8.")
    sizes = "Sizes are files actually written (fp32 safetensors; slimkit's compact format for the other stages)."
    data["notes"] = [sizes, seeds]
    text = markdown(data)
    write_results("factorize_share", data, text, out_dir=result_dir(args))
    print(text)


if __name__ == "__main__":
    main()
