"""Transformers: a ViT on Fashion-MNIST (distillation, head and FFN pruning, int8) and a BERT
classifier on a synthetic token task (dynamic int8 against PyTorch's and ONNX Runtime fp32).

    flock /tmp/slimkit-bench.lock .venv/bin/python bench/transformer.py   # full size, every part
    flock /tmp/slimkit-bench.lock .venv/bin/python bench/transformer.py --part vit-prune   # one part
    python bench/transformer.py --quick                                    # digits, tiny, < 2 minutes

``--part vit-students|vit-prune|bert`` re-measures one part and merges it into the stored
``transformer.json``: the other sections keep their figures and stamps, every target is derived
again from the merged figures. ``vit-prune`` reuses the cached teacher and the cached first-seed
student of the method ``vit-students`` found best (``runs/bench-transformer``).

**ViT** (Hugging Face ``ViTForImageClassification`` built from its config, random init): a
4-layer teacher; 2-layer students trained for equal epochs, ``--seeds`` seeds each: alone, Hinton
KD, KD + hidden states + attention maps (from the ViT teacher), and DeiT (a distillation token,
hard-label distillation from the default CNN teacher), and a student started from the teacher's
layers 0 and 2 (DistilBERT) then distilled like the third. The teacher cut to half its MACs in
each way of ``CUTS`` (whole heads and feed-forward neurons by Michel et al.'s importance, in
the least changed mix fast enough, in equal shares or in the mix timed fastest, with or
without the least important layer dropped first), each fine-tuned with KD for the recipe's
fine-tune epochs. The pipeline of ``recipes/vit-fashion-mnist.yaml`` (its stage configs are read
from the file) on the best student: prune, fine-tune, static int8 in ONNX Runtime. Every
deployable is saved, then timed against the fp32 teacher in PyTorch eager in one alternating run
at batch 1 and 32, in a fresh process (``_common.fresh_latency``: the benchmark's own process
has trained by then, which slowed the cuts more than the teacher).

**BERT**: see ``bench/transformer_text.py``.
"""

from __future__ import annotations

import copy
import json
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
    fresh_latency,
    git_commit,
    mean_std,
    merge_sections,
    result_dir,
    stamp,
    target,
    write_results,
)
from transformer_text import DISTILLED, ROWS, TASKS, score, text_section, text_targets, train_config

from slimkit.data import DataConfig, load_data
from slimkit.distillation import DistillConfig, distill, init_from_layers, recover, transformer_losses
from slimkit.evaluate import count_macs
from slimkit.evaluate.cost import artifact_bytes
from slimkit.export import report_of
from slimkit.models import DEFAULT_TEACHER, build_model
from slimkit.pruning import AttentionPruning, prune
from slimkit.quantization import quantize
from slimkit.recipe import load_recipe
from slimkit.train import Trainer

CACHE = ROOT / "runs" / "bench-transformer"
RECIPE = ROOT / "recipes" / "vit-fashion-mnist.yaml"
PARTS = ("vit-students", "vit-prune", "bert")
#: The teacher's cuts to half its MACs (``AttentionPruning`` knobs beside ``target_macs=0.5``):
#: heads and neurons alone, in the mix whose outputs change least among those timed at least
#: 1.5x faster than the teacher (the issue's goal, planned first, before this process has
#: trained anything), in equal shares, or in the mix timed fastest; then the last two with the
#: least important whole layer dropped first (fewer layer norms, residual adds and softmaxes).
CUTS = {
    "heads + FFN, least changed at 1.5x": {"balance": "latency", "min_speedup": 1.5},
    "heads + FFN, equal shares": {},
    "heads + FFN, fastest mix": {"balance": "latency"},
    "1 layer + heads + FFN, equal shares": {"layers": 1},
    "1 layer + heads + FFN, fastest mix": {"layers": 1, "balance": "latency"},
}
HEADS_FFN = tuple(c for c in CUTS if not c.startswith("1 layer"))  # the "head + FFN pruning"
INT8_CUT = "1 layer + heads + FFN, equal shares"


def cut_row(cut: str) -> str:
    return f"teacher pruned 2x MACs: {cut} (eager)"


FROM_TEACHER = "KD + hidden + attention (teacher-layer init)"
ALONE_FROM_TEACHER = "alone (teacher-layer init)"  # the control: what the start alone is worth
METHODS = ("alone", "KD", "KD + hidden + attention", "DeiT (CNN teacher)", FROM_TEACHER, ALONE_FROM_TEACHER)
DISTILLED_METHODS = ("KD", "KD + hidden + attention", "DeiT (CNN teacher)", FROM_TEACHER)
#: Students that are plain ViTs (DeiT's has a second head and token): the recipe pipeline starts from the best.
PLAIN = ("KD", "KD + hidden + attention", FROM_TEACHER)


def vit(layers: int, opts: dict[str, Any], *, token: bool = False) -> torch.nn.Module:
    return build_model("hf_vit", input_size=opts["size"], patch_size=opts["patch"], hidden_size=opts["hidden"],
                       layers=layers, heads=opts["heads"], intermediate_size=2 * opts["hidden"], num_classes=10,
                       distillation_token=token)


def cached(name: str, opts: dict[str, Any], make: Any, record: dict[str, Any], *, refresh: bool = False
           ) -> torch.nn.Module:
    """A model trained by ``make()``, reused from the cache when trained the same way; ``refresh``
    trains it again and replaces the cached one (a part that re-measures it)."""
    folder = opts["cache"] / name
    if not refresh and cache_record(folder) == record:
        return cached_model(folder).eval()
    model = make()
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

    return cached("cnn", opts, make, {"train": train_config(opts["teacher_epochs"], 0).to_dict(), "size": opts["size"]})


def student(method: str, seed: int, teacher: torch.nn.Module, cnn: Any, loaders: Any,
            opts: dict[str, Any]) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = vit(2, opts, token=method.startswith("DeiT"))
    train = train_config(opts["student_epochs"], seed)
    if method in (FROM_TEACHER, ALONE_FROM_TEACHER):  # DistilBERT's start: teacher layers 0 and 2, the rest
        init_from_layers(model, teacher, "first")
    if method.startswith("alone"):
        Trainer(model, train).fit(loaders.train)
    elif method == "KD":
        distill(model, DistillConfig(train=train), loaders.train, teacher=teacher)
    elif method.startswith("KD +"):
        losses = transformer_losses(model, teacher, kd=0.9, ce=0.1, hidden=0.5, attention=0.5)
        distill(model, DistillConfig(losses=losses, train=train), loaders.train, teacher=teacher)
    else:
        distill(model, DistillConfig(losses=[{"name": "deit", "hard": True}], train=train), loaders.train,
                teacher=cnn())
    return model.eval()


def student_record(method: str, seed: int, opts: dict[str, Any]) -> dict[str, Any]:
    return {"method": method, "seed": seed, "train": train_config(opts["student_epochs"], seed).to_dict(),
            "teacher": teacher_record(opts)}


def teacher_record(opts: dict[str, Any]) -> dict[str, Any]:
    return {"train": train_config(opts["teacher_epochs"], 0).to_dict(),
            "vit": {k: opts[k] for k in ("hidden", "heads", "patch")}}


def slug(method: str) -> str:
    return "student-" + "".join(c if c.isalnum() else "-" for c in method.lower()).strip("-")


def vit_setup(opts: dict[str, Any]) -> tuple[Any, torch.nn.Module]:
    """Fashion-MNIST (digits when quick) and the 4-layer ViT teacher (cached)."""
    loaders = load_data(DataConfig(name=opts["dataset"], batch_size=128, limit=opts["limit"], seed=0))

    def make_teacher() -> torch.nn.Module:
        torch.manual_seed(0)
        model = vit(4, opts)
        Trainer(model, train_config(opts["teacher_epochs"], 0)).fit(loaders.train)
        return model

    return loaders, cached("vit-teacher", opts, make_teacher, teacher_record(opts))


def students_section(opts: dict[str, Any], loaders: Any, teacher: torch.nn.Module,
                     methods: tuple[str, ...] = METHODS) -> dict[str, Any]:
    """The student ``methods``, every seed, trained again; each method's first-seed student is
    cached for ``--part vit-prune`` (the recipe pipeline starts from the best one)."""
    test = loaders.test
    cnn = cnn_teacher(loaders, opts)
    result: dict[str, Any] = {"teacher": {"accuracy": score(teacher, test), "epochs": opts["teacher_epochs"]},
                              "cnn_teacher": {"accuracy": score(cnn, test)}, "students": {}}
    for method in methods:
        scores = []
        for seed in opts["seeds"]:
            def make(method: str = method, seed: int = seed) -> torch.nn.Module:
                return student(method, seed, teacher, lambda: cnn, loaders, opts)

            if seed == opts["seeds"][0]:
                model = cached(slug(method), opts, make, student_record(method, seed, opts), refresh=True)
            else:
                model = make()
            scores.append(score(model, test))
        result["students"][method] = {"accuracy": scores, "mean": mean_std(scores)[0], "epochs": opts["student_epochs"]}
    return result


def with_stored_students(section: dict[str, Any], stored: dict[str, Any] | None, command: str) -> dict[str, Any]:
    """``section`` (some methods re-measured) with the stored methods it did not re-measure; every
    method says which run measured it (``measured``: commit and command)."""
    if not stored:
        raise SystemExit("--methods re-measures some students of stored results: run --part vit-students first")
    old, now = {"commit": stored["commit"], "command": stored["command"]}, {"commit": git_commit(), "command": command}
    students = {m: {"measured": old, **row} for m, row in stored["students"].items() if m not in section["students"]}
    fresh = {m: {**row, "measured": now} for m, row in section["students"].items()}
    return {**section, "students": {**students, **fresh}}


def recipe_student(students: dict[str, Any]) -> str:
    return max((m for m in PLAIN if m in students), key=lambda m: students[m]["mean"])


def prune_section(opts: dict[str, Any], loaders: Any, teacher: torch.nn.Module, chosen: str) -> dict[str, Any]:
    """Head + FFN pruning of the teacher, the recipe pipeline on the ``chosen`` student (its
    first seed, from the cache; trained again only if the cache lacks it), every deployable timed."""
    test = loaders.test
    example = next(iter(test))[0][:1]
    stages = {s.type: s for s in load_recipe(RECIPE).stages}
    finetune = stages["prune"].finetune.replace(epochs=opts["finetune_epochs"])  # the recipe's, fewer when quick

    # The teacher cut to half its MACs in each way of CUTS, each followed by the same KD fine-tune
    # from the unpruned teacher.
    result: dict[str, Any] = {"finetune_epochs": opts["finetune_epochs"], "cuts": {}}
    cuts = {}
    for name, knobs in CUTS.items():
        config = AttentionPruning(target_macs=0.5, ffn_round_to=8, latency_batch_size=32, threads=opts["threads"],
                                  **knobs)
        cuts[name] = prune(copy.deepcopy(teacher), config, loaders.train)
        report = report_of(cuts[name], "prune")
        recover(cuts[name], teacher, loaders.train, finetune)
        result["cuts"][name] = {"macs": [count_macs(teacher, example), count_macs(cuts[name], example)],
                                "heads": [sum(report[k]["heads"].values()) for k in ("before", "after")],
                                "ffn": [sum(report[k]["ffn"].values()) for k in ("before", "after")],
                                "depth": [sum(report[k]["depth"].values()) for k in ("before", "after")],
                                "mixes_ms": report.get("mixes_ms", {}), "mix": report.get("mix"),
                                "mixes_speedup": report.get("mixes_speedup", {}), "mixes_kl": report.get("mixes_kl", {})}

    # The recipe's pipeline on the best student: its own prune, fine-tune and int8 stage configs.
    seed = opts["seeds"][0]
    base = cached(slug(chosen), opts, lambda: student(chosen, seed, teacher, lambda: None, loaders, opts),
                  student_record(chosen, seed, opts))
    piped = prune(copy.deepcopy(base), stages["prune"].attention, loaders.train)
    recover(piped, teacher, loaders.train, finetune)
    int8 = quantize(piped.eval(), stages["quantize"].static_int8, loaders.train)
    pruned_int8 = quantize(cuts[INT8_CUT].eval(), stages["quantize"].static_int8, loaders.train)
    deployed = {"teacher fp32 (PyTorch eager)": teacher, f"student: {chosen} (eager)": base,
                **{cut_row(name): model.eval() for name, model in cuts.items()},
                f"teacher pruned ({INT8_CUT}), int8 (ORT)": pruned_int8, "recipe pipeline int8 (ORT)": int8}
    latency = fresh_latency(deployed, example, batch_sizes=(1, 32), warmup=opts["warmup"], repeats=opts["repeats"],
                              threads=opts["threads"], memory=False, settle=True)
    rows = {}
    for name, model in deployed.items():
        size = model.onnx_model.numel() if hasattr(model, "onnx_model") else artifact_bytes(model)
        rows[name] = {"accuracy": score(model, test), "bytes": int(size),
                      "median_ms": {str(b): latency[name][b]["median_ms"] for b in (1, 32)}}
    result["deployed"] = rows
    result["recipe_student"] = chosen
    return result


def students_targets(section: dict[str, Any]) -> list[tuple[str, float, bool]]:
    students = section["students"]
    best = max((m for m in DISTILLED_METHODS if m in students), key=lambda m: students[m]["mean"])
    gain = 100 * (students[best]["mean"] - students["alone"]["mean"])
    out = [(f"ViT: best distilled student ({best}) at least 0.5 points above alone (points)", gain, gain >= 0.5)]
    if FROM_TEACHER in students and ALONE_FROM_TEACHER in students:  # the control: what the losses add to the start
        losses = 100 * (students[FROM_TEACHER]["mean"] - students[ALONE_FROM_TEACHER]["mean"])
        out.append(("ViT: the distillation losses add to the teacher-layer start trained alone (points)", losses,
                    losses > 0))
    return out


def prune_targets(section: dict[str, Any]) -> list[tuple[str, float, bool]]:
    """Every cut judged on both pruning targets; "head + FFN pruning" is met where one cut without
    dropped layers meets both at once."""
    rows = section["deployed"]
    teacher, recipe = rows["teacher fp32 (PyTorch eager)"], rows["recipe pipeline int8 (ORT)"]
    recipe_lost = 100 * (teacher["accuracy"] - recipe["accuracy"])
    out, both = [], {}
    for cut, facts in section["cuts"].items():
        macs, row = facts["macs"], rows[cut_row(cut)]
        lost = 100 * (teacher["accuracy"] - row["accuracy"])
        speed = teacher["median_ms"]["32"] / row["median_ms"]["32"]
        both[cut] = lost <= 1.0 and speed >= 1.5
        out += [(f"ViT: {cut} reaches 2x fewer MACs (x)", macs[0] / macs[1], macs[0] / macs[1] >= 2.0 * 0.98),
                (f"ViT: {cut} at 2x fewer MACs loses at most 1 point (points lost)", lost, lost <= 1.0),
                (f"ViT: {cut} at least 1.5x faster at batch 32 (x)", speed, speed >= 1.5)]
    met = [c for c in HEADS_FFN if both.get(c)]
    out.append(("ViT: head + FFN pruning (no layer dropped) meets both at once (cuts that do)", len(met), bool(met)))
    return out + [
        ("ViT recipe: at least 4x smaller than the teacher (x)", teacher["bytes"] / recipe["bytes"],
         teacher["bytes"] / recipe["bytes"] >= 4.0),
        ("ViT recipe: at least 3x faster at batch 1 (x)", teacher["median_ms"]["1"] / recipe["median_ms"]["1"],
         teacher["median_ms"]["1"] / recipe["median_ms"]["1"] >= 3.0),
        ("ViT recipe: at most 1.5 points lost (points)", recipe_lost, recipe_lost <= 1.5),
    ]


def measured(section: dict[str, Any]) -> str:
    """Which run measured a section: a part run re-measures only its own."""
    threads = section["options"]["threads"]
    return (f"Measured by `{section['command']}` at {section['commit'][:8]} on {section['machine']['cpu']}, "
            f"{threads} thread(s).")


def markdown(data: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    lines = ["# Transformers", "", ("Each section is measured by its own part (`--part vit-students`, `vit-prune`, "
                                    "`bert`; all of them by default) and says which run measured it.")]
    if "vit" in data:
        vit_data = data["vit"]
        students = vit_data["students"]
        lines += ["", (f"## ViT students (2 layers, {students['alone']['epochs']} epochs, "
                       f"{len(vit_data['options']['seeds'])} seed(s), {vit_data['options']['dataset']})"), "",
                  measured(vit_data), "",
                  (f"Teacher ViT (4 layers): {100 * vit_data['teacher']['accuracy']:.2f}%; "
                   f"CNN teacher (DeiT): {100 * vit_data['cnn_teacher']['accuracy']:.2f}%."),
                  "", "| student | accuracy (%) |", "|---|---|"]
        lines += [f"| {m} | {fmt_pm(students[m]['accuracy'])} |" for m in METHODS if m in students]
        other = [m for m in METHODS if students.get(m, {}).get("measured", {}).get("commit", vit_data["commit"])
                 != vit_data["commit"]]
        lines += ["", *(f"'{m}' measured by `{students[m]['measured']['command']}` at "
                        f"{students[m]['measured']['commit'][:8]}." for m in other)] if other else []
    if "vit_prune" in data:
        section = data["vit_prune"]
        lines += ["", "## ViT deployables against the fp32 teacher (PyTorch eager)", "", measured(section), "",
                  "| model | accuracy (%) | bytes | batch 1 (ms) | batch 32 (ms) | speedup b1 | speedup b32 |",
                  "|---|---|---|---|---|---|---|"]
        ref = section["deployed"]["teacher fp32 (PyTorch eager)"]["median_ms"]
        # stored JSON comes back with sorted keys: the table keeps the order it was measured in
        order = ("teacher fp32", "student", "teacher pruned 2x", "teacher pruned (", "recipe")
        for name, row in sorted(section["deployed"].items(), key=lambda r: [r[0].startswith(o) for o in order].index(True)):
            ms = row["median_ms"]
            lines.append(f"| {name} | {100 * row['accuracy']:.2f} | {row['bytes']:,} | {ms['1']:.3f} | "
                         f"{ms['32']:.3f} | {ref['1'] / ms['1']:.2f}x | {ref['32'] / ms['32']:.2f}x |")
        lines += ["", (f"Teacher cuts: each to half the MACs, then {section['finetune_epochs']} fine-tune epoch(s) of "
                       f"KD from the unpruned teacher (the recipe's, also in its pipeline). Recipe pipeline on the "
                       f"'{section['recipe_student']}' student (first seed)."), "",
                  "| cut | MACs | layers | heads | FFN neurons |", "|---|---|---|---|---|"]
        for cut, facts in section["cuts"].items():
            macs = facts["macs"]
            lines.append(f"| {cut} | {macs[0]:,} -> {macs[1]:,} ({macs[0] / macs[1]:.2f}x fewer) | "
                         + " | ".join(f"{facts[k][0]} -> {facts[k][1]}" for k in ("depth", "heads", "ffn")) + " |")
            mixes = {k: v for k, v in facts["mixes_ms"].items() if k != "batch_size"}
            speedups, kl = facts.get("mixes_speedup", {}), facts.get("mixes_kl", {})

            def mix(k: str, v: float, speedups: dict = speedups, kl: dict = kl) -> str:
                return (f"{k} {v:.2f} ms" + (f" ({speedups[k]:.2f}x" if k in speedups else "")
                        + (f", KL {kl[k]:.3f})" if k in kl else ")" if k in speedups else ""))
            if mixes:
                lines.append(f"| ↳ mixes timed at batch 32 while planning | {', '.join(mix(k, v) for k, v in mixes.items())}; "
                             f"kept: {facts['mix']} | | | |")
    if "bert" in data:
        text = data["bert"]
        lines += ["", (f"## BERT on the {text['task'].get('name', 'marker')} task (sequence length "
                       f"{text['sequence_length']}, {text['epochs']} epochs)"), "", measured(text), "",
                  (f"Teacher (4 layers): {100 * text['accuracy']['teacher']:.2f}%; 2-layer student alone: "
                   f"{100 * text['accuracy']['student alone']:.2f}%"
                   + (f"; {DISTILLED}: {100 * text['accuracy'][DISTILLED]:.2f}%" if DISTILLED in text['accuracy']
                      else "") + "."), "",
                  "| model | accuracy (%) | batch 1 (ms) | batch 32 (ms) |", "|---|---|---|---|"]
        for name, row in sorted(text["rows"].items(), key=lambda r: ROWS.index(r[0])):
            ms = row["median_ms"]
            lines.append(f"| {name} | {100 * row['accuracy']:.2f} | {ms['1']:.3f} | {ms['32']:.3f} |")
    lines += ["", "## Targets", "", "| target | value | met |", "|---|---|---|"]
    lines += [f"| {r['target']} | {r['value']:.3f} | {'yes' if r['met'] else 'NO'} |" for r in rows]
    return "\n".join(lines)


def targets_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target from the (merged) figures; a section never measured yet states none."""
    judges = (("vit", students_targets), ("vit_prune", prune_targets), ("bert", text_targets))
    return [target(*t) for key, judge in judges if key in data for t in judge(data[key])]


def upgrade(stored: dict[str, Any]) -> dict[str, Any]:
    """Results written before ``--part``: one ``vit`` section held the pruning and the deployables,
    and the options and command lay at the top. Split them as a part run writes them."""
    vit_data = stored.get("vit", {})
    if "deployed" in vit_data:
        moved = ("pruned_teacher", "deployed", "recipe_student")
        stored["vit_prune"] = {**{k: vit_data.pop(k) for k in moved}, "commit": vit_data["commit"],
                               "machine": vit_data["machine"]}
    for key in ("vit", "vit_prune", "bert"):
        if key in stored:
            stored[key].setdefault("command", stored.get("command"))
            stored[key].setdefault("options", {**stored.get("options", {}), "threads": stored.get("threads")})
    stored.pop("options", None)
    return stored


def main() -> None:
    parser = bench_arguments(__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--part", choices=(*PARTS, "all"), default="all",
                        help="re-measure one part and merge it into the stored results (default: all parts)")
    parser.add_argument("--methods", type=lambda t: tuple(m.strip() for m in t.split(",")), default=METHODS,
                        help="with --part vit-students: re-measure only these student methods (comma-separated); "
                             "the others keep their stored figures and stamps")
    parser.add_argument("--bert-task", choices=sorted(TASKS), default="tagged",
                        help="the synthetic token task of the BERT part (bench/transformer_text.py)")
    args = parser.parse_args()
    quick = args.quick
    torch.set_num_threads(args.threads)
    out: Path = result_dir(args)
    finetune = {s.type: s for s in load_recipe(RECIPE).stages}["prune"].finetune.epochs
    opts = {"quick": quick, "threads": args.threads, "dataset": "digits" if quick else "fashion-mnist",
            "limit": None, "size": 8 if quick else 28, "patch": 4, "hidden": 16 if quick else 64, "heads": 4,
            "teacher_epochs": 2 if quick else 15, "student_epochs": 1 if quick else 10,
            "finetune_epochs": 1 if quick else finetune, "seeds": list(range(1 if quick else args.seeds)),
            "repeats": 3 if quick else 50, "warmup": 1 if quick else 5}
    text_opts = {"task": args.bert_task, "length": 64, "vocab": 64, "gap": 16, "chains": 3, "copies": 3,
                 "hidden": 16 if quick else 64, "heads": 4, "train": 256 if quick else 20000, "test": 128 if quick else 4000, "epochs": 1 if quick else 8,
                 "repeats": opts["repeats"], "warmup": opts["warmup"], "threads": args.threads}
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown or (set(args.methods) != set(METHODS) and args.part != "vit-students"):
        parser.error(f"--methods goes with --part vit-students and names methods among {', '.join(METHODS)}"
                     + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    command = ("python bench/transformer.py" + (" --quick" if quick else f" --threads {args.threads}")
               + ("" if args.part == "all" else f" --part {args.part}")
               + ("" if set(args.methods) == set(METHODS) else f" --methods '{','.join(args.methods)}'")
               + ("" if args.bert_task == "tagged" else f" --bert-task {args.bert_task}"))
    parts = list(PARTS) if args.part == "all" else [args.part]
    stored = upgrade(json.loads((out / "transformer.json").read_text())) if (out / "transformer.json").exists() else {}
    fresh: dict[str, Any] = {}
    opts["cache"] = (out / "models") if quick else CACHE
    if "vit-students" in parts or "vit-prune" in parts:
        loaders, teacher = vit_setup(opts)
        if "vit-students" in parts:
            fresh["vit"] = students_section(opts, loaders, teacher, args.methods)
            if set(args.methods) != set(METHODS):
                fresh["vit"] = with_stored_students(fresh["vit"], stored.get("vit"), command)
        if "vit-prune" in parts:
            students = (fresh.get("vit") or stored.get("vit") or {}).get("students")
            if students is None:
                parser.error(f"--part vit-prune starts from the best student: run --part vit-students first ({out})")
            fresh["vit_prune"] = prune_section(opts, loaders, teacher, recipe_student(students))
    if "bert" in parts:
        fresh["bert"] = {**text_section(text_opts), "options": text_opts}
    plain = {k: (str(v) if isinstance(v, Path) else v) for k, v in opts.items()}
    for key, section in fresh.items():
        fresh[key] = stamp({**section, "command": command, "options": section.get("options", plain)})
    run = {"quick": quick, "dataset": opts["dataset"], "threads": args.threads, "command": command, **fresh}
    data = run if args.part == "all" else merge_sections(stored, run, list(fresh), where=out / "transformer.json")
    rows = targets_of(data)
    write_results("transformer", data, markdown(data, rows), targets=rows, out_dir=out)


if __name__ == "__main__":
    main()
