"""The report's content as a list of neutral blocks, rendered to Markdown and to HTML alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from slimkit.report.collect import (
    RunData,
    fmt_bytes,
    fmt_delta,
    fmt_float,
    fmt_int,
    fmt_pct,
    fmt_times,
)


@dataclass
class Block:
    """``kind`` is heading (``level``), text, strong, items, table (``headers``, ``rows``) or figure (``name``)."""

    kind: str
    text: str = ""
    level: int = 2
    items: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    name: str = ""


def _headline(run: RunData) -> str:
    if run.final:
        return run.final["summary"]
    done, total = len(run.stages), len(run.status.get("stages", []))
    return f"The run is not finished: {done} of {total} stages done ({run.status.get('state', 'unknown')})."


def _facts(run: RunData) -> list[str]:
    facts = []
    if run.original and run.final:
        o, f = run.final["original"], run.final["final"]
        settings = run.final.get("settings", {})
        facts.append(f"Original: {run.original['folder']} ({fmt_int(o['cost']['params'])} parameters, "
                     f"{fmt_bytes(o['cost']['bytes'])}). Final: {f['deployed']} ({fmt_bytes(f['cost']['bytes'])}).")
        data = run.recipe.get("data", {}).get("name")
        facts.append(f"Measured on the {settings.get('split', 'test')} split of {data} "
                     f"({f['quality'].get('num_samples', 'n/a')} samples) with {settings.get('threads')} thread(s), "
                     f"original and final alternating ({settings.get('repeats')} repeats, median).")
        if not run.final.get("same_data"):
            facts.append("The final model works on another dataset (a transfer stage), so accuracy is not compared "
                         "with the original's; size and speed are.")
    return facts


def _targets(run: RunData) -> list[str]:
    rows = (run.final or {}).get("targets") or []
    out = []
    for row in rows:
        measured = row["measured"]
        shown = "n/a" if measured is None else (f"{measured:+.2f} points" if "accuracy" in row["target"] else f"{measured:.1f}x")
        out.append(f"{'MET' if row['met'] else 'MISSED'}: {row['target']} (measured {shown})")
    return out


def stage_table(run: RunData) -> Block:
    """One row per stage (and the original): quality and cost with changes against the original."""
    sizes = run.batch_sizes
    headers = ["stage", "accuracy", "macro-F1", "ROC-AUC", "ECE", "params", "bytes", "MACs",
               *[f"latency b{b} (ms)" for b in sizes], "time (s)"]
    rows = []
    if run.original:
        q, c = run.original["quality"], run.original["cost"]
        lat = run.original.get("latency", {})
        rows.append(["original", fmt_pct(q["accuracy"]), fmt_float(q["f1"]), fmt_float(q["roc_auc"]),
                     fmt_float(q["ece"]), fmt_int(c["params"]), fmt_bytes(c["bytes"]), fmt_int(c["macs"]),
                     *[fmt_float(lat.get(b, {}).get("median_ms"), 3) for b in sizes], ""])
    for stage in run.stages:
        q, c, vs = stage["quality"], stage["cost"], stage.get("vs_original") or {}
        lat = stage.get("latency", {})

        def with_delta(value: str, delta: float | None, digits: int = 4, unit: str = "") -> str:
            return value if delta is None else f"{value} ({fmt_delta(delta, digits, unit)})"

        def with_ratio(value: str, ratio: float | None) -> str:
            return value if ratio is None else f"{value} ({fmt_times(ratio)})"

        carried = "*" if c.get("carried") else ""
        rows.append([
            f"{stage['number']}. {stage['name']} ({stage['type']})",
            with_delta(fmt_pct(q["accuracy"]), vs.get("accuracy_delta"), 2, " pts"),
            with_delta(fmt_float(q["f1"]), vs.get("f1_delta")), with_delta(fmt_float(q["roc_auc"]), vs.get("roc_auc_delta")),
            with_delta(fmt_float(q["ece"]), vs.get("ece_delta")),
            with_ratio(fmt_int(c["params"]) + carried, vs.get("params_ratio")),
            with_ratio(fmt_bytes(c["bytes"]), vs.get("size_ratio")),
            with_ratio(fmt_int(c["macs"]) + carried, vs.get("macs_ratio")),
            *[with_ratio(fmt_float(lat.get(b, {}).get("median_ms"), 3), (vs.get("speedup") or {}).get(b)) for b in sizes],
            f"{stage.get('seconds', 0):.1f}",
        ])
    return Block("table", headers=headers, rows=rows)


def versus_blocks(run: RunData) -> list[Block]:
    """Original against final: the figures side by side, agreement and flips, per-class changes."""
    if not run.final:
        return [Block("text", "The final comparison is written when the run finishes.")]
    o, f, ratios = run.final["original"], run.final["final"], run.final["ratios"]
    rows = []
    for label, key in (("accuracy", "accuracy"), ("macro-F1", "f1"), ("ROC-AUC", "roc_auc"), ("ECE", "ece")):
        a, b = o["quality"].get(key), f["quality"].get(key)
        show = fmt_pct if key == "accuracy" else fmt_float
        delta = None if a is None or b is None or not run.final.get("same_data") else (b - a) * (100 if key == "accuracy" else 1)
        rows.append([label, show(a), show(b), fmt_delta(delta, 2 if key == "accuracy" else 4, " pts" if key == "accuracy" else "")])
    for label, key, ratio in (("parameters", "params", "params_ratio"), ("bytes (file)", "bytes", "size_ratio"),
                              ("MACs per sample", "macs", "macs_ratio")):
        fmt = fmt_bytes if key == "bytes" else fmt_int
        rows.append([label, fmt(o["cost"][key]), fmt(f["cost"][key]), fmt_times(ratios.get(ratio), "smaller", "larger")])
    for b in run.batch_sizes:
        la, lb = o.get("latency", {}).get(b, {}), f.get("latency", {}).get(b, {})
        rows.append([f"latency batch {b} (median ms)", fmt_float(la.get("median_ms"), 3), fmt_float(lb.get("median_ms"), 3),
                     fmt_times((ratios.get("speedup") or {}).get(b), "faster", "slower")])
    blocks = [Block("table", headers=["", "original", "final", "change"], rows=rows)]
    agree = run.final.get("agreement")
    if agree:
        blocks.append(Block("text", f"The final model predicts the same class as the original on "
                                    f"{fmt_pct(agree['agreement'])} of {agree['num_samples']} samples. "
                                    f"{agree['right_to_wrong']} predictions flipped from right to wrong and "
                                    f"{agree['wrong_to_right']} from wrong to right."))
        names = run.final.get("class_names") or []
        per_a, per_b = o["quality"]["per_class_accuracy"], f["quality"]["per_class_accuracy"]
        class_rows = [[names[i] if i < len(names) else str(i), fmt_pct(a), fmt_pct(b),
                       fmt_delta(None if a is None or b is None else 100 * (b - a), 2, " pts")]
                      for i, (a, b) in enumerate(zip(per_a, per_b))]
        blocks.append(Block("table", headers=["class", "original", "final", "change"], rows=class_rows))
    return blocks


def _note(stage: dict[str, Any]) -> str:
    info, kind = stage.get("info") or {}, stage["type"]
    if kind == "export":
        parity = info.get("parity")
        extra = f"; parity max |diff| {parity['max_abs_diff']:.2e}" if parity and "max_abs_diff" in parity else ""
        return f"{info.get('format')} file {info.get('file')}, {fmt_bytes(info.get('bytes'))}{extra}"
    if kind == "quantize":
        return f"{info.get('method')}: {len(info.get('quantized_layers', []))} layers quantized, " \
               f"{len(info.get('float_layers') or {})} left in float"
    if kind == "prune":
        record = info.get("record", {})
        macs = record.get("macs")
        return f"{info.get('method')}" + (f": MACs {fmt_int(macs[0])} -> {fmt_int(macs[1])}" if macs else "")
    if kind == "factorize":
        return f"{info.get('method')}: {len(info.get('layers', []))} layers factorized"
    if kind == "distill":
        note = f"student {info.get('student')}"
        distilled, alone = (info.get(k) or {} for k in ("distilled", "alone"))
        if "test_acc" in distilled and "test_acc" in alone:  # what distillation bought, at equal epochs
            gain = 100 * (distilled["test_acc"] - alone["test_acc"])
            note += (f"; distilled {fmt_pct(distilled['test_acc'])} vs trained alone {fmt_pct(alone['test_acc'])} "
                     f"({gain:+.2f} pts, {alone.get('epochs', '?')} epochs each)")
        return note
    if kind == "transfer":
        return f"moved to {info.get('dataset')} (images resized to {info.get('resized_to')})"
    if kind == "share":
        return f"{len(info.get('layers', []))} layers share weights"
    if kind == "evaluate":
        robust = (info.get("robustness") or {}).get("model", {})
        return ", ".join(f"{k} {fmt_pct(v)}" for k, v in robust.items())
    return ""


def build_document(run: RunData, figures: dict[str, str]) -> list[Block]:
    """The report's blocks. ``figures`` maps the figures that exist to their captions."""
    blocks = [Block("heading", f"Compression report: {run.name}", level=1), Block("strong", _headline(run))]
    blocks += [Block("text", text) for text in _facts(run)]
    targets = _targets(run)
    if targets:
        blocks += [Block("heading", "Targets"), Block("items", items=targets)]
    blocks += [Block("heading", "Stages"),
               Block("text", "Each stage measured against the original on the same data and machine; changes in "
                             "brackets (points, or how many times smaller/faster). * carried from the float model "
                             "(a runtime artifact exposes no parameters or MACs)."),
               stage_table(run)]
    blocks += [Block("heading", "Original vs final"), *versus_blocks(run)]
    if "confusion" in figures:
        blocks.append(Block("figure", figures["confusion"], name="confusion"))
    plots = [n for n in figures if n != "confusion"]
    if plots:
        blocks.append(Block("heading", "Plots"))
        blocks += [Block("figure", figures[n], name=n) for n in plots]
    blocks.append(Block("heading", "Stage details"))
    blocks.append(Block("table", headers=["stage", "type", "time (s)", "notes"],
                        rows=[[f"{s['number']}. {s['name']}", s["type"], f"{s.get('seconds', 0):.1f}", _note(s)]
                              for s in run.stages]))
    if run.final:
        settings = run.final.get("settings", {})
        blocks.append(Block("text", "Machine: " + ", ".join(f"{k} {v}" for k, v in settings.items() if k != "batch_sizes")))
    return blocks
