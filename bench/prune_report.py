"""The Markdown table a person reads, rendered from bench/results/prune.json's data."""

from __future__ import annotations

from typing import Any

from _common import fmt_pm, machine_info, mean_std
from prune_foreign import render as render_foreign

#: Keys :func:`_common.stamp` adds to a section: not rows.
STAMP = ("commit", "machine")


def entries(section: dict[str, Any]) -> dict[str, Any]:
    """A section's rows, without its stamp."""
    return {k: v for k, v in section.items() if k not in STAMP}


def _ratio(x: float) -> str:
    return f"{x:.2f}x"


def _rows(rows: dict[str, Any], reference: float) -> list[str]:
    lines = ["| method | test accuracy % | Δ points | MACs | params | bytes | speed b=1 | speed b=256 |",
             "|---|---|---|---|---|---|---|---|"]
    for label, r in rows.items():
        delta = 100 * (mean_std(r["accuracy"])[0] - reference)
        lines.append(f"| {label} | {fmt_pm(r['accuracy'])} | {delta:+.2f} | {_ratio(r['macs_ratio'])} fewer | "
                     f"{_ratio(r['params_ratio'])} fewer | {_ratio(r['bytes_ratio'])} smaller | "
                     f"{_ratio(r['speedup']['1'])} | {_ratio(r['speedup']['256'])} |")
    return lines


def _reruns(reruns: dict[str, Any]) -> list[str]:
    if not reruns:
        return []
    done = ", ".join(f"{name} ({r['seconds']:.0f} s, commit {r['commit'][:10]})" for name, r in reruns.items())
    return [f"Sections re-measured into these results with `--only`: {done}.", ""]


def _retimed(retimed: Any) -> str:
    if not retimed:
        return ""
    how = (f": all {retimed['architectures']} architectures in one alternating run, median of {retimed['rounds']} rounds"
           if isinstance(retimed, dict) else "")
    return f"; the teacher CNN rows re-timed alone with `--only speed`{how}"


def _rounding(headline: dict[str, Any]) -> str:
    if not headline.get("round_to"):
        return ""
    plain = headline["unrounded"]
    convs = "-".join(str(v) for k, v in plain["channels"].items() if k.startswith("features."))
    return (f" slimkit's rows round kept channel counts to multiples of {headline['round_to']} (`round_to`); the "
            f"latency-aware plan without rounding ({convs} conv channels) runs {_ratio(plain['speedup']['256'])} "
            f"as fast at batch 256 and {_ratio(plain['speedup']['1'])} at batch 1.")


def render(data: dict[str, Any]) -> str:
    b = data["budget"]
    m = data.get("machine") or machine_info()
    teacher = data["teacher"]["accuracy"]
    out = [
        "# Pruning benchmark" + (" (--quick: digits, tiny budgets; not a result)" if data["quick"] else ""),
        "",
        (f"Dataset {data['dataset']}; {len(b['seeds'])} seeds; {data['threads']} thread(s) for training and timing "
        f"{('on ' + m['cpu']) if m.get('cpu') else ''}. Accuracy is on the full test split (mean ± std over seeds); "
        "MACs, params and saved bytes are ratios original/pruned; speed is original latency / pruned latency "
        "(median, alternating A B A B in one process"
        f"{_retimed(data.get('speed_retimed'))}). Run: "
        "`flock /tmp/slimkit-bench.lock .venv/bin/python bench/prune.py`."),
        "",
        *_reruns(data.get("reruns", {})),
        (f"Teacher CNN ({data['teacher']['source']}): {100 * teacher:.2f}%; ResNet-8 (width 0.5) trained here "
        f"({b['train_epochs']} epochs): "
        f"{100 * data['resnet']['accuracy']:.2f}%."),
        "",
        "## Head-to-head at 2x fewer MACs (teacher CNN)",
        "",
        (f"Fine-tuning budget: {b['headline_epochs']} epochs over "
        f"{'the whole training split' if b['headline_samples'] is None else str(b['headline_samples']) + ' training samples'}"
        f", AdamW lr {b['lr']}. slimkit's criterion ({data['headline']['criterion']}) is the best of the sweep below. "
        f"Sensitivity analysis ({data['headline']['sensitivity_seconds']:.0f} s, each single-layer cut also timed at "
        f"batch 256 against the unpruned model) chose the per-layer ratios {data['headline']['ratios']} for the MACs "
        f"target alone, and {data['headline']['fast_ratios']} for the MACs target plus a predicted latency share of "
        f"{data['headline']['latency_goal']:.2f}. KD = 0.9 KD(T=4) + 0.1 CE from the unpruned teacher. The targets "
        "are judged on both latency-aware rows."
        + _rounding(data["headline"])),
        "",
        *_rows(data["headline"]["rows"], teacher),
        "",
        "## Targets",
        "",
        "| target | value | met |",
        "|---|---|---|",
    ]
    for t in data["targets"]:
        out.append(f"| {t['target']} | {t['value']:.2f} | {'yes' if t['met'] else 'no'} |")
    out += ["", "## Criteria sweep (short fine-tuning, cross-entropy)", "",
            (f"Each row: prune to the MACs target, fine-tune {b['sweep_epochs']} epoch over {b['sweep_samples']} samples "
            f"(CE, no KD, AdamW lr {b.get('sweep_lr', b['lr'])}: one rate per model, the same for every criterion), test. The peer is Torch-Pruning's BasePruner with its L1 group importance, its channel ratio "
            "searched to the same MACs target."), ""]
    for model, targets in entries(data["structured"]).items():
        reference = teacher if model.startswith("teacher") else data["resnet"]["accuracy"]
        for label, rows in targets.items():
            out += [f"### {model}, {label} fewer MACs (unpruned {100 * reference:.2f}%)", "", *_rows(rows, reference), ""]
    out += ["## Han et al.: magnitude pruning with retraining to 8% of the weights", "",
            ("Magnitude masks at Han et al.'s per-layer rates for LeNet-300-100 (8%, 9%, 26% kept); for LeNet-5 "
            "ranked across layers in units of each layer's weight std (Han's quality x std threshold). Raised by "
            "Zhu & Gupta's cubic schedule over the first 60% of the retraining epochs "
            f"({b['han_epochs']}), then held at 92% sparsity, by `slimkit.pruning.gradual`; KD from the dense model, full training split in batches of "
            f"{b.get('han_batch', 64)}, AdamW lr 1e-2"
            f"{' (section re-measured alone: ' + str(round(data['reruns']['han']['seconds'])) + ' s)' if 'han' in data.get('reruns', {}) else ''}. "
            f"Dense models trained {b.get('han_dense_epochs', b['train_epochs'])} epochs. Bytes: dense safetensors vs slimkit's sparse artifact."), "",
            "| model | dense % | pruned % | weights kept | dense bytes | sparse bytes | smaller |", "|---|---|---|---|---|---|---|"]
    for name, r in entries(data["han"]).items():
        out.append(f"| {name} | {100 * r['dense_accuracy']:.2f} | {fmt_pm(r['accuracy'])} | {r['weights_kept']:.1%} | "
                   f"{r['dense_bytes']:,} | {r['sparse_bytes']:,} | {r['dense_bytes'] / r['sparse_bytes']:.1f}x |")
    slim = data["slimming"]
    mlp, cnn = slim["MLP 784-500-300"], slim["teacher CNN"]
    out += ["", "## Network Slimming", "",
            ("BN-scale L1 (λ=1e-4) during training, then global bn_scale pruning and fine-tuning (MLP: 3 epochs, CE; "
             "teacher: one sparsity epoch and one KD epoch over the head-to-head's data)."), "",
            "| model | after sparsity training % | pruned + fine-tuned % | kept | speed b=1 | speed b=256 |",
            "|---|---|---|---|---|---|",
            (f"| MLP 784-500-300 (80% of neurons removed) | {fmt_pm(mlp['before'])} | {fmt_pm(mlp['accuracy'])} | "
            f"784-{mlp['neurons'][0][0]}-{mlp['neurons'][0][1]} ({_ratio(mlp['params_ratio'])} fewer params) | - | - |"),
            (f"| teacher CNN (2x fewer MACs, KD recovery) | {fmt_pm(cnn['before'])} | {fmt_pm(cnn['accuracy'])} | "
            f"MACs 2x | {_ratio(cnn['speedup']['1'])} | {_ratio(cnn['speedup']['256'])} |"), ""]
    if "foreign" in data:
        out += render_foreign(data["foreign"])
    return "\n".join(out)
