"""report.html in a real browser (Debian's Chromium driven by Playwright): it loads without
console errors, every figure decodes, and a screenshot is taken.

Skips when Chromium or Playwright is absent, unless SLIMKIT_REQUIRE_BROWSER=1 (CI), where a
missing browser is a failure, so a broken setup cannot hide behind a skip.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def chromium() -> str:
    """The Chromium binary, or skip (fail when SLIMKIT_REQUIRE_BROWSER=1)."""
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    problem = None if path else "chromium is not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = problem or "playwright is not installed (pip install playwright)"
    if problem:
        if os.environ.get("SLIMKIT_REQUIRE_BROWSER") == "1":
            pytest.fail(problem + " and SLIMKIT_REQUIRE_BROWSER=1")
        pytest.skip(problem)
    return path  # type: ignore[return-value]


def inspect_page(html: Path, screenshot: Path, executable: str) -> dict:
    """Open ``html``; return console errors, page errors and image widths; save a full-page screenshot."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
            page.goto(html.resolve().as_uri(), wait_until="load")
            widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
            title = page.title()
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {"errors": errors, "widths": widths, "title": title}


def test_report_renders_in_chromium(finished_run, tmp_path):
    executable = chromium()
    html = finished_run / "report.html"
    shot = tmp_path / "report.png"
    result = inspect_page(html, shot, executable)
    assert result["errors"] == []
    assert len(result["widths"]) == 6 and all(w > 0 for w in result["widths"])
    assert result["title"] == "slimkit report: report-demo"
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000
