"""``report.md``: the report as Markdown, with its figures as PNG files beside it."""

from __future__ import annotations

from pathlib import Path

from slimkit.report.document import Block

FIGURES_DIR = "report_files"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: list[Block], figure_paths: dict[str, str]) -> str:
    """Markdown text; ``figure_paths`` maps figure names to paths relative to the report.

    >>> render_markdown([Block("heading", "Title", level=1), Block("table", headers=["a"], rows=[["1"]])], {})
    '# Title\\n\\n| a |\\n|---|\\n| 1 |\\n'
    """
    out: list[str] = []
    for block in blocks:
        if block.kind == "heading":
            out.append(f"{'#' * block.level} {block.text}")
        elif block.kind == "strong":
            out.append(f"**{block.text}**")
        elif block.kind == "text":
            out.append(block.text)
        elif block.kind == "items":
            out.append("\n".join(f"- {item}" for item in block.items))
        elif block.kind == "table":
            lines = ["| " + " | ".join(map(_cell, block.headers)) + " |", "|" + "---|" * len(block.headers)]
            lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in block.rows]
            out.append("\n".join(lines))
        elif block.kind == "figure" and block.name in figure_paths:
            out.append(f"![{block.text}]({figure_paths[block.name]})")
    return "\n\n".join(out) + "\n"


def write_markdown(blocks: list[Block], figures: dict[str, bytes], out: Path) -> Path:
    """Write ``out/report.md`` and its figures under ``out/report_files/`` (atomically)."""
    from slimkit.fileio import atomic_write_bytes, atomic_write_text

    paths = {}
    for name, png in figures.items():
        atomic_write_bytes(out / FIGURES_DIR / f"{name}.png", png)
        paths[name] = f"{FIGURES_DIR}/{name}.png"
    return atomic_write_text(out / "report.md", render_markdown(blocks, paths))
