"""Transformers: a ViT on Fashion-MNIST (distillation, head and FFN pruning, int8) and a BERT
classifier on a synthetic token task (dynamic int8 against PyTorch's and ONNX Runtime fp32).

    flock /tmp/slimkit-bench.lock .venv/bin/python bench/transformer.py   # full size
    python bench/transformer.py --quick                                    # digits, tiny, < 2 minutes

**ViT** (Hugging Face ``ViTForImageClassification`` built from its config, random init): a
4-layer teacher; 2-layer students trained for equal epochs, ``--seeds`` seeds each: alone, Hinton
KD, KD + hidden states + attention maps (from the ViT teacher), and DeiT (a distillation token,
hard-label distillation from the default CNN teacher). The teacher pruned to half its MACs by
whole heads and feed-forward neurons (Michel et al.'s importance), fine-tuned briefly with KD.
The pipeline of ``recipes/vit-fashion-mnist.yaml`` (its stage configs are read from the file)
on the best student: prune, fine-tune, static int8 in ONNX Runtime. Every deployable is timed
against the fp32 teacher in PyTorch eager in one alternating run at batch 1 and 32.

**BERT**: see ``bench/transformer_text.py``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from _common import (
    ROOT,
    bench_arguments,
    cache_model,
    cache_record,
    cached_model,
    default_pair,
    fmt_pm,
    mean_std,
    result_dir,
    stamp,
    target,
    write_results,
)
from transformer_text import score, text_section, text_targets

from slimkit.data import DataConfig, load_data
from slimkit.distillation import DistillConfig, RecoveryConfig, distill, recover, transformer_losses
from slimkit.evaluate import count_macs, measure_latency
from slimkit.evaluate.cost import artifact_bytes
from slimkit.models import DEFAULT_TEACHER, build_model
from slimkit.pruning import AttentionPruning, prune
from slimkit.quantization import quantize
from slimkit.recipe import load_recipe
from slimkit.train import TrainConfig, Trainer

CACHE = ROOT / "runs" / "bench-transformer"
RECIPE = ROOT / "recipes" / "vit-fashion-mnist.yaml"
METHODS = ("alone", "KD", "KD + hidden + attention", "DeiT (CNN teacher)")


def train_config(epochs: int, seed: int) -> TrainConfig:
    return TrainConfig(epochs=epochs, lr=1e-3, schedule="cosine", warmup_epochs=min(1.0, epochs / 4), seed=seed,
                       progress=False)


def vit(layers: int, opts: dict[str, Any], *, token: bool = False) -> torch.nn.Module:
    return build_model("hf_vit", input_size=opts["size"], patch_size=opts["patch"], hidden_size=opts["hidden"],
                       layers=layers, heads=opts["heads"], intermediate_size=2 * opts["hidden"], num_classes=10,
                       distillation_token=token)


def cached(name: str, opts: dict[str, Any], make: Any, record: dict[str, Any]) -> torch.nn.Module:
    """A model trained by ``make()``, reused from the cache when trained the same way (full runs)."""
    folder = CACHE / name
    if not opts["quick"] and cache_record(folder) == record:
        return cached_model(folder).eval()
    model = make()
    if not opts["quick"]:
        cache_model(folder, model, record)
    return model.eval()


def cnn_teacher(loaders: Any, opts: dict[str, Any]) -> torch.nn.Module:
    if not opts["quick"]:
        return default_pair()[0].eval()  # the default teacher CNN, 6 epochs (the shared cache)

    def make() -> torch.nn.Module:
        torch.manual_seed(0)
        model = build_model(DEFAULT_TEACHER[0], **{**DEFAULT_TEACHER[1], "input_size": opts["size"]})
        Trainer(model, train_config(opts["teacher_epochs"], 0)).fit(loaders.train)
        return model

    return cached("cnn", opts, make, {})


def student(method: str, seed: int, teacher: torch.nn.Module, cnn: torch.nn.Module, loaders: Any,
            opts: dict[str, Any]) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = vit(2, opts, token=method.startswith("DeiT"))
    train = train_config(opts["student_epochs"], seed)
    if method == "alone":
        Trainer(model, train).fit(loaders.train)
    elif method == "KD":
        distill(model, DistillConfig(train=train), loaders.train, teacher=teacher)
    elif method.startswith("KD +"):
        losses = transformer_losses(model, teacher, kd=0.9, ce=0.1, hidden=0.5, attention=0.5)
        distill(model, DistillConfig(losses=losses, train=train), loaders.train, teacher=teacher)
    else:
        distill(model, DistillConfig(losses=[{"name": "deit", "hard": True}], train=train), loaders.train, teacher=cnn)
    return model.eval()


def vit_section(opts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, torch.nn.Module]]:
    loaders = load_data(DataConfig(name=opts["dataset"], batch_size=128, limit=opts["limit"], seed=0))
    test = loaders.test
    record = {"train": train_config(opts["teacher_epochs"], 0).to_dict(), "vit": {k: opts[k] for k in
                                                                                    ("hidden", "heads", "patch")}}

    def make_teacher() -> torch.nn.Module:
        torch.manual_seed(0)
        model = vit(4, opts)
        Trainer(model, train_config(opts["teacher_epochs"], 0)).fit(loaders.train)
        return model

    teacher = cached("vit-teacher", opts, make_teacher, record)
    cnn = cnn_teacher(loaders, opts)
    result: dict[str, Any] = {"teacher": {"accuracy": score(teacher, test), "epochs": opts["teacher_epochs"]},
                              "cnn_teacher": {"accuracy": score(cnn, test)}, "students": {}}
    best: dict[str, torch.nn.Module] = {}
    for method in METHODS:
        scores = []
        for seed in opts["seeds"]:
            model = student(method, seed, teacher, cnn, loaders, opts)
            scores.append(score(model, test))
            if seed == opts["seeds"][0]:
                best[method] = model
        result["students"][method] = {"accuracy": scores, "mean": mean_std(scores)[0], "epochs": opts["student_epochs"]}
    example = next(iter(test))[0][:1]

    # Head + FFN pruning of the teacher to half its MACs, then a short KD fine-tune from the unpruned one.
    pruned = prune(copy.deepcopy(teacher), AttentionPruning(target_macs=0.5, ffn_round_to=8), loaders.train)
    recover(pruned, teacher, loaders.train, RecoveryConfig(epochs=opts["finetune_epochs"], lr=5e-4))
    result["pruned_teacher"] = {"accuracy": score(pruned.eval(), test),
                                "macs": [count_macs(teacher, example), count_macs(pruned, example)],
                                "finetune_epochs": opts["finetune_epochs"]}

    # The recipe's pipeline on the best student: its own prune, fine-tune and int8 stage configs.
    stages = {s.type: s for s in load_recipe(RECIPE).stages}
    # DeiT's student has a second head and token; the recipe's student is a plain ViT.
    chosen = max(METHODS[1:3], key=lambda m: result["students"][m]["mean"])
    base = best[chosen]
    piped = prune(copy.deepcopy(base), stages["prune"].attention, loaders.train)
    recover(piped, teacher, loaders.train, stages["prune"].finetune.replace(epochs=opts["finetune_epochs"]))
    int8 = quantize(piped.eval(), stages["quantize"].static_int8, loaders.train)
    pruned_int8 = quantize(pruned, stages["quantize"].static_int8, loaders.train)
    deployed = {"teacher fp32 (PyTorch eager)": teacher, f"student: {chosen} (eager)": base,
                "teacher pruned 2x MACs (eager)": pruned, "teacher pruned, int8 (ORT)": pruned_int8,
                "recipe pipeline int8 (ORT)": int8}
    latency = measure_latency(deployed, example, batch_sizes=(1, 32), warmup=opts["warmup"], repeats=opts["repeats"],
                              threads=opts["threads"], memory=False)
    rows = {}
    for name, model in deployed.items():
        size = model.onnx_model.numel() if hasattr(model, "onnx_model") else artifact_bytes(model)
        rows[name] = {"accuracy": score(model, test), "bytes": int(size),
                      "median_ms": {str(b): latency[name][b]["median_ms"] for b in (1, 32)}}
    result["deployed"] = rows
    result["recipe_student"] = chosen
    return result, {"teacher": teacher}


def vit_targets(section: dict[str, Any]) -> list[tuple[str, float, bool]]:
    students, rows = section["students"], section["deployed"]
    alone = students["alone"]["mean"]
    best = max(METHODS[1:], key=lambda m: students[m]["mean"])
    gain = 100 * (students[best]["mean"] - alone)
    teacher = rows["teacher fp32 (PyTorch eager)"]
    pruned, recipe = rows["teacher pruned 2x MACs (eager)"], rows["recipe pipeline int8 (ORT)"]
    macs = section["pruned_teacher"]["macs"]
    lost = 100 * (teacher["accuracy"] - pruned["accuracy"])
    speed = teacher["median_ms"]["32"] / pruned["median_ms"]["32"]
    recipe_lost = 100 * (teacher["accuracy"] - recipe["accuracy"])
    return [
        (f"ViT: best distilled student ({best}) at least 0.5 points above alone (points)", gain, gain >= 0.5),
        ("ViT: head + FFN pruning reaches 2x fewer MACs (x)", macs[0] / macs[1], macs[0] / macs[1] >= 2.0 * 0.98),
        ("ViT: head + FFN pruning at 2x fewer MACs loses at most 1 point (points lost)", lost, lost <= 1.0),
        ("ViT: head + FFN pruning at least 1.5x faster at batch 32 (x)", speed, speed >= 1.5),
        ("ViT recipe: at least 4x smaller than the teacher (x)", teacher["bytes"] / recipe["bytes"],
         teacher["bytes"] / recipe["bytes"] >= 4.0),
        ("ViT recipe: at least 3x faster at batch 1 (x)", teacher["median_ms"]["1"] / recipe["median_ms"]["1"],
         teacher["median_ms"]["1"] / recipe["median_ms"]["1"] >= 3.0),
        ("ViT recipe: at most 1.5 points lost (points)", recipe_lost, recipe_lost <= 1.5),
    ]


def markdown(data: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    vit_data, text = data["vit"], data["bert"]
    students = vit_data["students"]
    lines = ["# Transformers", "",
             (f"`{data['command']}` on {vit_data['machine']['cpu']}, {data['threads']} thread(s). "
              f"Dataset: {data['dataset']}."), "",
             f"## ViT students (2 layers, {students['alone']['epochs']} epochs, {len(data['options']['seeds'])} seed(s))",
             "",
             (f"Teacher ViT (4 layers): {100 * vit_data['teacher']['accuracy']:.2f}%; "
              f"CNN teacher (DeiT): {100 * vit_data['cnn_teacher']['accuracy']:.2f}%."),
             "", "| student | accuracy (%) |", "|---|---|"]
    lines += [f"| {m} | {fmt_pm(s['accuracy'])} |" for m, s in students.items()]
    lines += ["", "## ViT deployables against the fp32 teacher (PyTorch eager)", "",
              "| model | accuracy (%) | bytes | batch 1 (ms) | batch 32 (ms) | speedup b1 | speedup b32 |",
              "|---|---|---|---|---|---|---|"]
    ref = vit_data["deployed"]["teacher fp32 (PyTorch eager)"]["median_ms"]
    for name, row in vit_data["deployed"].items():
        ms = row["median_ms"]
        lines.append(f"| {name} | {100 * row['accuracy']:.2f} | {row['bytes']:,} | {ms['1']:.3f} | {ms['32']:.3f} | "
                     f"{ref['1'] / ms['1']:.2f}x | {ref['32'] / ms['32']:.2f}x |")
    macs = vit_data["pruned_teacher"]["macs"]
    lines += ["", (f"Pruned teacher: MACs {macs[0]:,} -> {macs[1]:,} ({macs[0] / macs[1]:.2f}x fewer), "
                   f"{vit_data['pruned_teacher']['finetune_epochs']} fine-tune epoch(s). Recipe pipeline on "
                   f"the '{vit_data['recipe_student']}' student."), "",
              f"## BERT on the marker task (sequence length {text['sequence_length']}, {text['epochs']} epochs)", "",
              (f"Teacher (4 layers): {100 * text['accuracy']['teacher']:.2f}%; 2-layer student alone: "
               f"{100 * text['accuracy']['student alone']:.2f}%."), "",
              "| model | accuracy (%) | batch 1 (ms) | batch 32 (ms) |", "|---|---|---|---|"]
    for name, row in text["rows"].items():
        ms = row["median_ms"]
        lines.append(f"| {name} | {100 * row['accuracy']:.2f} | {ms['1']:.3f} | {ms['32']:.3f} |")
    lines += ["", "## Targets", "", "| target | value | met |", "|---|---|---|"]
    lines += [f"| {r['target']} | {r['value']:.3f} | {'yes' if r['met'] else 'NO'} |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = bench_arguments(__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    quick = args.quick
    torch.set_num_threads(args.threads)
    opts = {"quick": quick, "threads": args.threads, "dataset": "digits" if quick else "fashion-mnist",
            "limit": None, "size": 8 if quick else 28, "patch": 4, "hidden": 16 if quick else 64, "heads": 4,
            "teacher_epochs": 2 if quick else 15, "student_epochs": 1 if quick else 10,
            "finetune_epochs": 1 if quick else 2, "seeds": list(range(1 if quick else args.seeds)),
            "repeats": 3 if quick else 50, "warmup": 1 if quick else 5}
    text_opts = {"length": 64, "vocab": 64, "gap": 16, "hidden": 16 if quick else 64, "heads": 4,
                 "train": 256 if quick else 20000, "test": 128 if quick else 4000, "epochs": 1 if quick else 8,
                 "repeats": opts["repeats"], "warmup": opts["warmup"], "threads": args.threads}
    vit_data, _ = vit_section(opts)
    text = text_section(text_opts)
    rows = [target(*t) for t in [*vit_targets(vit_data), *text_targets(text)]]
    data = {"quick": quick, "dataset": opts["dataset"], "threads": args.threads, "options": opts,
            "command": "python bench/transformer.py" + (" --quick" if quick else f" --threads {args.threads}"),
            "vit": stamp(vit_data), "bert": stamp({**text, "options": text_opts})}
    out: Path = result_dir(args)
    write_results("transformer", data, markdown(data, rows), targets=rows, out_dir=out)


if __name__ == "__main__":
    main()
