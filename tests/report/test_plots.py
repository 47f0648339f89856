"""Figures: every one the demo run supports is a PNG; absent data gives no figure; no global state."""

import matplotlib

from slimkit.report import read_run
from slimkit.report.collect import RunData
from slimkit.report.plots import FIGURES, _frontier, draw_all

PNG = b"\x89PNG\r\n\x1a\n"


def test_every_figure_is_drawn_for_a_full_run(finished_run):
    backend = matplotlib.get_backend()
    figures = draw_all(read_run(finished_run))
    assert set(figures) == set(FIGURES)
    assert all(png.startswith(PNG) and len(png) > 2000 for png in figures.values())
    assert matplotlib.get_backend() == backend  # drawn on Agg canvases, the caller's backend untouched


def test_figures_need_their_data(finished_run, tmp_path):
    run = read_run(finished_run)
    empty = RunData(tmp_path, run.recipe, run.status, None, [], None)
    assert draw_all(empty) == {}
    no_sensitivity = RunData(tmp_path, run.recipe, run.status, run.original,
                             [s for s in run.stages if s["type"] != "prune"], run.final)
    assert "sensitivity" not in draw_all(no_sensitivity)


def test_pareto_frontier_keeps_the_undominated_points():
    assert _frontier([(3, 0.9), (1, 0.5), (2, 0.4), (5, 0.95)]) == [(1, 0.5), (3, 0.9), (5, 0.95)]
