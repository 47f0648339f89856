"""report.html: one self-contained page (no script, no external resource), figures embedded."""

import re

from slimkit.report import render_html
from slimkit.report.document import Block


def test_html_report_is_self_contained(finished_run):
    page = (finished_run / "report.html").read_text()  # written by the run itself
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 6 and all(len(i) > 1000 for i in images)
    assert '<p class="summary">' in page and "<table>" in page


def test_html_escapes_text():
    page = render_html([Block("text", "<b>&</b>"), Block("table", headers=["<h>"], rows=[["a<b"]])], {})
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in page and "<th>&lt;h&gt;</th>" in page and "<td>a&lt;b</td>" in page
