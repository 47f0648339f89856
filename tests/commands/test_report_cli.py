"""`slimkit report RUN`: rewrite a run's report from its files, with benchmark points."""

import json

import torch

from slimkit.cli import main
from slimkit.recipe import Recipe, run_recipe

RECIPE = {
    "name": "report-cli",
    "data": {"name": "synthetic", "batch_size": 16,
             "options": {"num_classes": 3, "shape": [1, 8, 8], "size": 48, "test_size": 12}},
    "model": {"registry": "mlp", "knobs": {"hidden": [8]}},
    "evaluation": {"batch_sizes": [1], "repeats": 1, "warmup": 0, "final_repeats": 1},
    "stages": [{"type": "train", "epochs": 1}, {"type": "prune", "unstructured": {"amount": 0.5}}],
}


def test_report_command_writes_both_reports(tmp_path, capsys):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_recipe(Recipe.from_dict(RECIPE), tmp_path / "run", progress=False, report=False)
    finally:
        torch.set_num_threads(before)
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"points": [{"label": "peer-lib", "accuracy": 0.4, "bytes": 900}]}))
    assert main(["report", str(tmp_path / "run"), "--bench", str(bench)]) == 0
    assert "report:" in capsys.readouterr().out
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Compression report: report-cli" in html and "sparsity" not in html.split("<h2>Plots")[0][:0]
    assert (tmp_path / "run" / "report_files" / "pareto_size.png").is_file()
    assert "2. prune (prune)" in (tmp_path / "run" / "report.md").read_text()


def test_report_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "is not a recipe run" in capsys.readouterr().err
