"""``report.html``: one self-contained page (inline CSS, figures embedded as base64 PNG).

It loads no script, font or image from anywhere, so it opens offline and can be mailed as is.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from slimkit.report.document import Block

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;
 padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.6rem;border-bottom:2px solid #1f77b4;padding-bottom:.3rem}
h2{font-size:1.2rem;margin-top:2rem;color:#1f4e79}
.summary{font-size:1.25rem;font-weight:600;background:#eef5fb;border-left:4px solid #1f77b4;padding:.6rem 1rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:.85rem;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right;white-space:nowrap}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
tr:nth-child(even) td{background:#fafafa}
figure{margin:1rem 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.85rem;color:#555}
li.met{color:#1a7f37}li.missed{color:#b42318}
"""


def _figure_tag(block: Block, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{escape(block.text)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{escape(block.text)}</figcaption></figure>")


def render_html(blocks: list[Block], figures: dict[str, bytes], *, title: str = "slimkit report") -> str:
    """The whole page as one string.

    >>> page = render_html([Block("strong", "2.0x smaller")], {})
    >>> '<p class="summary">2.0x smaller</p>' in page and "<script" not in page
    True
    """
    body: list[str] = []
    for block in blocks:
        if block.kind == "heading":
            body.append(f"<h{block.level}>{escape(block.text)}</h{block.level}>")
        elif block.kind == "strong":
            body.append(f'<p class="summary">{escape(block.text)}</p>')
        elif block.kind == "text":
            body.append(f"<p>{escape(block.text)}</p>")
        elif block.kind == "items":
            items = "".join(f'<li class="{item.split(":")[0].lower()}">{escape(item)}</li>' for item in block.items)
            body.append(f"<ul>{items}</ul>")
        elif block.kind == "table":
            head = "".join(f"<th>{escape(h)}</th>" for h in block.headers)
            rows = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in block.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif block.kind == "figure" and block.name in figures:
            body.append(_figure_tag(block, figures[block.name]))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write_html(blocks: list[Block], figures: dict[str, bytes], out: Path, *, title: str) -> Path:
    """Write ``out/report.html`` atomically."""
    from slimkit.fileio import atomic_write_text

    return atomic_write_text(out / "report.html", render_html(blocks, figures, title=title))
