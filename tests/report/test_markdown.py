"""report.md: summary first, the stage table with deltas, original vs final, figures beside it."""

import re

from slimkit.report import read_run


def test_markdown_report_reads_top_down(finished_run):
    text = (finished_run / "report.md").read_text()  # written by the run itself
    lines = text.splitlines()
    summary = read_run(finished_run).final["summary"]
    assert lines[0] == "# Compression report: report-demo" and lines[2] == f"**{summary}**"
    assert re.search(r"\d+\.\dx (smaller|larger)", summary) and "points accuracy" in summary
    assert "MET: >= 1.5x smaller" in text and "MISSED: >= 100x faster at batch 4" in text
    table = [line for line in lines if line.startswith("| 2. prune (prune)")]
    assert len(table) == 1 and " pts)" in table[0] and "x)" in table[0]
    assert "| original |" in text and "predictions flipped from right to wrong" in text
    for link in re.findall(r"\]\((report_files/[^)]+)\)", text):
        assert (finished_run / link).is_file()
    assert "report_files/sensitivity.png" in text and "report_files/layers.png" in text


def test_the_distill_note_shows_what_distillation_bought():
    from slimkit.report.document import _note

    info = {"student": "cnn(channels=[16, 32, 64])", "distilled": {"test_acc": 0.9241, "epochs": 16},
            "alone": {"test_acc": 0.92, "epochs": 16}}
    assert _note({"type": "distill", "info": info}) == (
        "student cnn(channels=[16, 32, 64]); distilled 92.41% vs trained alone 92.00% (+0.41 pts, 16 epochs each)")
    assert _note({"type": "distill", "info": {"student": "s"}}) == "student s"  # compare_alone: false
