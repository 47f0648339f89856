"""The report's figures as PNG bytes, drawn with matplotlib's object API on the Agg canvas.

No pyplot and no global backend switch: each figure is its own ``Figure`` on a
``FigureCanvasAgg``, so drawing a report changes nothing in the caller's matplotlib state.
Each function returns ``None`` when the run has nothing to show for it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any

from slimkit.report.collect import RunData

DPI = 110
COLORS = {"original": "#d62728", "stage": "#1f77b4", "benchmark": "#7f7f7f"}


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Any, list[Any]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both cost (lower) and accuracy (higher), by cost.

    >>> _frontier([(1, 0.5), (2, 0.9), (3, 0.8), (4, 0.95)])
    [(1, 0.5), (2, 0.9), (4, 0.95)]
    """
    best, out = -math.inf, []
    for cost, acc in sorted(points):
        if acc > best:
            out.append((cost, acc))
            best = acc
    return out


def _pareto(ax: Any, points: list[dict[str, Any]], cost: Callable[[dict], float | None], xlabel: str) -> bool:
    shown = [(p, cost(p)) for p in points if cost(p)]
    if not shown:
        return False
    for p, x in shown:
        face = COLORS[p["kind"]] if p["same_data"] else "none"
        marker = "s" if p["kind"] == "benchmark" else "o"
        ax.scatter([x], [100 * p["accuracy"]], s=40, marker=marker, color=COLORS[p["kind"]], facecolors=face, zorder=3)
    front = _frontier([(x, 100 * p["accuracy"]) for p, x in shown if p["same_data"]])
    if len(front) > 1:
        ax.step(*zip(*front), where="post", color="#2ca02c", alpha=0.6, label="Pareto front")
        ax.legend(fontsize=7, loc="lower right")
    _log_axis(ax, [x for _, x in shown], bytes_axis="bytes" in xlabel)
    ys = [100 * p["accuracy"] for p, _ in shown]
    pad = max(1.0, (max(ys) - min(ys)) * 0.25)
    ax.set_ylim(min(ys) - pad, max(ys) + pad)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    ax.grid(True, alpha=0.3)
    place_labels(ax, [(p["label"], x, 100 * p["accuracy"]) for p, x in shown])
    return True


def _log_axis(ax: Any, values: list[float], *, bytes_axis: bool) -> None:
    """A log x axis with room around the points and tick labels a person can read: 1-2-5 steps,
    sizes as KB/MB and times as plain numbers, no crowded minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    low, high = min(values), max(values)
    spread = max(high / low, 1.0)
    margin = max(1.6, spread ** 0.12)  # the labels need room beside the outermost points
    ax.set_xscale("log")
    ax.set_xlim(low / margin, high * margin)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=12))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(FuncFormatter(_size_label if bytes_axis else _number_label))
    ax.tick_params(axis="x", labelsize=7)


def _size_label(value: float, _: Any = None) -> str:
    """Decimal units, so the 1-2-5 ticks read as round numbers: ``2000`` -> ``2 kB``.

    >>> _size_label(2000), _size_label(500), _size_label(5e6)
    ('2 kB', '500 B', '5 MB')
    """
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:.3g} B"


def _number_label(value: float, _: Any = None) -> str:
    """``0.05`` -> ``0.05``; ``2000`` -> ``2000`` (no powers of ten).

    >>> _number_label(0.05), _number_label(2000.0)
    ('0.05', '2000')
    """
    return f"{value:.3g}" if value < 1000 else f"{value:.0f}"


#: Where a label may go, in points from its marker: right, above, left, below, then further out.
OFFSETS = [(5, 4), (5, -11), (-5, 4), (-5, -11), (0, 12), (0, -18), (12, 16), (-12, 16), (12, -24), (-12, -24),
           (18, 4), (-18, 4), (0, 26), (0, -32)]


def place_labels(ax: Any, labels: list[tuple[str, float, float]]) -> list[Any]:
    """Annotate each point with its label where the text overlaps no other label and stays inside
    the axes (greedy: the first free spot of :data:`OFFSETS`, trying them in order); where no
    spot is free, a short number is drawn instead and the label is listed under the x axis.
    The figure's layout is settled first, so the checks hold on the saved image.
    Returns the annotations."""
    keyed = _place(ax, labels, frozenset())
    if keyed:  # the key under the axis changes the layout: place everything again on the new one
        import textwrap

        key = "  ".join(f"{i}: {name}" for i, name in enumerate(keyed, 1))
        width = max(30, int(fig_width_px(ax) / 6.5))  # about 6.5 px per character at this size
        ax.set_xlabel(ax.get_xlabel() + "\n" + "\n".join(textwrap.wrap(key, width)), fontsize=8)
        for text in list(ax.texts):
            text.remove()
        _place(ax, labels, frozenset(keyed))
    return list(ax.texts)


def fig_width_px(ax: Any) -> float:
    """The figure's width in pixels (the key under the axis may use all of it)."""
    return float(ax.figure.get_figwidth() * ax.figure.dpi)


def _place(ax: Any, labels: list[tuple[str, float, float]], numbered: frozenset[str]) -> list[str]:
    from matplotlib.transforms import Bbox

    fig = ax.figure
    fig.draw_without_rendering()  # constrained layout moves the axes: place on its final position
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    # the markers themselves: a label must not cover any point
    placed: list[Any] = [Bbox.from_bounds(px - 5, py - 5, 10, 10)
                         for px, py in ax.transData.transform([(x, y) for _, x, y in labels])]
    keyed: list[str] = sorted(numbered, key=[name for name, _, _ in labels].index)
    for label, x, y in labels:
        shown = str(keyed.index(label) + 1) if label in numbered else label
        if not _try(ax, shown, x, y, renderer, frame, placed) and label not in numbered:
            keyed.append(label)
            _try(ax, str(len(keyed)), x, y, renderer, frame, placed, force=True)
    return keyed


def _try(ax: Any, text: str, x: float, y: float, renderer: Any, frame: Any, placed: list[Any], *,
         force: bool = False) -> bool:
    for dx, dy in OFFSETS:
        align = "left" if dx > 0 else "right" if dx < 0 else "center"
        artist = ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=7, ha=align,
                             va="bottom")
        box = artist.get_window_extent(renderer).expanded(1.04, 1.1)
        inside = box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0 and box.y1 <= frame.y1
        if inside and not any(box.overlaps(other) for other in placed):
            placed.append(box)
            return True
        artist.remove()
    if force:  # nowhere free: a number on the point itself, still better than a pile of text
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(0, 0), fontsize=6, ha="center", va="center",
                    color="white", fontweight="bold")
    return False


def pareto_size(run: RunData) -> bytes | None:
    """Accuracy against file size for the original, every stage and any benchmark points."""
    fig, (ax,) = _figure(6.4, 4.2)
    if not _pareto(ax, run.points(), lambda p: p.get("bytes"), "file size (bytes, log scale)"):
        return None
    ax.set_title("accuracy vs size (hollow: another dataset)")
    return _png(fig)


def pareto_latency(run: RunData) -> bytes | None:
    """Accuracy against median latency, one panel per measured batch size."""
    sizes = run.batch_sizes
    if not sizes:
        return None
    fig, axes = _figure(4.2 * len(sizes), 4.0, ncols=len(sizes))
    drawn = False
    for ax, b in zip(axes, sizes):
        if _pareto(ax, run.points(), lambda p, b=b: (p.get("latency_ms") or {}).get(b), f"latency at batch {b} (ms, log)"):
            ax.set_title(f"accuracy vs latency, batch {b}")
            drawn = True
    return _png(fig) if drawn else None


def training_curves(run: RunData) -> bytes | None:
    """Training loss and validation accuracy per epoch of every stage that trained."""
    trained = [s for s in run.stages if s.get("history")]
    if not trained:
        return None
    fig, (loss_ax, acc_ax) = _figure(10, 3.8, ncols=2)
    for stage in trained:
        epochs = [h["epoch"] for h in stage["history"]]
        label = f"{stage['number']}. {stage['name']}"
        loss_ax.plot(epochs, [h.get("train_loss") for h in stage["history"]], marker="o", label=label)
        if any(h.get("val_acc") is not None for h in stage["history"]):
            acc_ax.plot(epochs, [100 * h["val_acc"] if h.get("val_acc") is not None else math.nan
                                 for h in stage["history"]], marker="o", label=label)
    loss_ax.set(title="training loss", xlabel="epoch", ylabel="loss")
    acc_ax.set(title="validation accuracy", xlabel="epoch", ylabel="accuracy (%)")
    for ax in (loss_ax, acc_ax):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return _png(fig)


def _grouped(final: dict[str, dict], name: str) -> list[dict]:
    return [row for layer, row in final.items() if layer == name or layer.startswith(name + ".")]


def layer_bars(run: RunData) -> bytes | None:
    """Per layer of the original: share of parameters kept, sparsity, bit width and rank, finally."""
    if not run.original or not run.stages:
        return None
    base, final = run.original.get("layers") or {}, run.stages[-1].get("layers") or {}
    names = [n for n, row in base.items() if row.get("params")]
    if not names or not final:
        return None
    kept = [100 * sum(r.get("params", 0) for r in _grouped(final, n)) / base[n]["params"] for n in names]
    panels = {"parameters kept (%)": kept}
    sparsity = [100 * max((r.get("sparsity", 0) for r in _grouped(final, n)), default=0) for n in names]
    if any(sparsity):
        panels["sparsity (%)"] = sparsity
    bits = [min((r.get("bits", 32) for r in _grouped(final, n)), default=32) for n in names]
    if any(b != 32 for b in bits):
        panels["weight bits"] = bits
    ranks = [(final.get(n, {}).get("rank") or [0])[0] for n in names]
    if any(ranks):
        panels["rank"] = ranks
    fig, axes = _figure(4.0 * len(panels), 0.9 + 0.28 * len(names), ncols=len(panels))
    for ax, (title, values) in zip(axes, panels.items()):
        ax.barh(range(len(names)), values, color=COLORS["stage"])
        ax.set_yticks(range(len(names)), names if ax is axes[0] else [""] * len(names), fontsize=7)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=9)
        ax.grid(True, axis="x", alpha=0.3)
    return _png(fig)


def sensitivity_curves(run: RunData) -> bytes | None:
    """Validation accuracy with one layer pruned at each ratio (stages that ran sensitivity analysis)."""
    found = [(s, s["info"]["sensitivity"]) for s in run.stages if (s.get("info") or {}).get("sensitivity")]
    if not found:
        return None
    fig, axes = _figure(5.2 * len(found), 3.8, ncols=len(found))
    for ax, (stage, result) in zip(axes, found):
        ratios = [100 * r for r in result["ratios"]]
        for layer, accs in result["accuracy"].items():
            ax.plot(ratios, [100 * a for a in accs], marker="o", label=layer)
        ax.axhline(100 * result["baseline"]["accuracy"], color="k", linestyle="--", linewidth=1, label="unpruned")
        ax.set(title=f"{stage['number']}. {stage['name']}: sensitivity", xlabel="channels removed (%)",
               ylabel="validation accuracy (%)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
    return _png(fig)


def confusion_matrices(run: RunData) -> bytes | None:
    """Confusion matrices of the original and the final model, side by side (row-normalized)."""
    if not run.final:
        return None
    pairs = [("original", run.final["original"]["quality"]), ("final", run.final["final"]["quality"])]
    pairs = [(n, q["confusion"]) for n, q in pairs if q.get("confusion")]
    if not pairs:
        return None
    fig, axes = _figure(5.0 * len(pairs), 4.4, ncols=len(pairs))
    names = run.final.get("class_names") or []
    for ax, (title, matrix) in zip(axes, pairs):
        rows = [[v / max(sum(row), 1) for v in row] for row in matrix]
        image = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
        ticks = range(len(matrix))
        labels = [names[i] if i < len(names) else str(i) for i in ticks]
        ax.set_xticks(ticks, labels, rotation=60, fontsize=6)
        ax.set_yticks(ticks, labels, fontsize=6)
        ax.set(title=f"{title} (rows: true class)", xlabel="predicted")
        fig.colorbar(image, ax=ax, shrink=0.8)
    return _png(fig)


#: Figure name -> (drawing function, caption), in report order.
FIGURES: dict[str, tuple[Callable[[RunData], bytes | None], str]] = {
    "confusion": (confusion_matrices, "Confusion matrices of the original and the final model"),
    "pareto_size": (pareto_size, "Accuracy against file size: every stage, the original and benchmark points"),
    "pareto_latency": (pareto_latency, "Accuracy against latency per batch size (median, same machine)"),
    "training": (training_curves, "Training curves of every stage that trained"),
    "layers": (layer_bars, "Per layer: parameters kept, sparsity, bit width and rank in the final model"),
    "sensitivity": (sensitivity_curves, "Pruning sensitivity: accuracy with one layer pruned"),
}


def draw_all(run: RunData) -> dict[str, bytes]:
    """Every figure the run has data for, as PNG bytes by name."""
    out = {}
    for name, (draw, _) in FIGURES.items():
        png = draw(run)
        if png:
            out[name] = png
    return out
