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


def test_crowded_pareto_labels_overlap_neither_each_other_nor_the_axes():
    """Many stages with nearly the same size and accuracy: every label stays readable."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from slimkit.report.plots import _pareto

    points = [{"label": f"{i}. a stage with a long name", "accuracy": 0.9 + 0.001 * (i % 3), "bytes": 10_000 + 40 * i,
               "kind": "stage", "same_data": True} for i in range(9)]
    points.append({"label": "original", "accuracy": 0.93, "bytes": 400_000, "kind": "original", "same_data": True})
    fig = Figure(figsize=(6.4, 4.2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    assert _pareto(ax, points, lambda p: p["bytes"], "file size (bytes, log scale)")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    long_labels = [t for t in ax.texts if "stage" in t.get_text() or t.get_text() == "original"]
    assert long_labels  # most labels fit next to their point
    for i, box in enumerate(boxes):
        assert frame.x0 - 1 <= box.x0 and box.x1 <= frame.x1 + 1 and frame.y0 - 1 <= box.y0 and box.y1 <= frame.y1 + 1
        assert not any(box.overlaps(other) for other in boxes[i + 1:])
    ticks = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert ticks and all(t.endswith("B") for t in ticks)  # sizes, not powers of ten
