"""Compression reports: ``report.md`` and a self-contained ``report.html`` for a recipe run.

A plain-language summary, the stage table with changes against the original, original vs final
(agreement, flips, per-class changes, confusion matrices) and plots (Pareto views of size and
latency, training curves, per-layer bars, sensitivity curves).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from slimkit.report.collect import RunData, read_run
from slimkit.report.document import Block, build_document
from slimkit.report.html import render_html, write_html
from slimkit.report.markdown import render_markdown, write_markdown
from slimkit.report.plots import FIGURES, draw_all


def write_report(out: str | Path, *, benchmarks: Sequence[str | Path] = ()) -> dict[str, Path]:
    """Write ``report.md`` (+ ``report_files/``) and ``report.html`` for the run folder ``out``.

    ``benchmarks`` are JSON files whose ``points`` (label, accuracy, bytes, latency_ms) join the
    Pareto plots; a ``benchmarks.json`` inside the run folder is always read.
    """
    out = Path(out)
    run = read_run(out, benchmarks=benchmarks)
    figures = draw_all(run)
    blocks = build_document(run, {name: FIGURES[name][1] for name in figures})
    return {"markdown": write_markdown(blocks, figures, out),
            "html": write_html(blocks, figures, out, title=f"slimkit report: {run.name}")}


__all__ = ["FIGURES", "Block", "RunData", "build_document", "draw_all", "read_run", "render_html",
           "render_markdown", "write_html", "write_markdown", "write_report"]
