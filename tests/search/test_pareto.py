"""Pareto fronts on hand-made objective values; the table and the plot."""

import pytest

from slimkit.errors import ConfigError
from slimkit.search.pareto import dominates, front_markdown, pareto_front, plot_front

MAX_MIN = {"accuracy": "maximize", "ms": "minimize"}


def test_front_on_hand_made_points():
    rows = [
        {"accuracy": 0.90, "ms": 3.0},  # 0 front: most accurate
        {"accuracy": 0.88, "ms": 1.0},  # 1 front
        {"accuracy": 0.85, "ms": 1.5},  # 2 dominated by 1
        {"accuracy": 0.80, "ms": 0.5},  # 3 front: fastest
        {"accuracy": 0.88, "ms": 1.0},  # 4 equal to 1: kept too
        {"accuracy": 0.90, "ms": 3.5},  # 5 dominated by 0 (same accuracy, slower)
        {"accuracy": 0.89, "ms": 2.0},  # 6 front
    ]
    assert pareto_front(rows, MAX_MIN) == [0, 1, 3, 4, 6]


def test_three_objectives_and_directions():
    rows = [{"a": 1, "b": 1, "c": 1}, {"a": 1, "b": 1, "c": 2}, {"a": 2, "b": 0, "c": 1}]
    assert pareto_front(rows, {"a": "minimize", "b": "minimize", "c": "minimize"}) == [0, 2]
    assert pareto_front(rows, {"a": "maximize", "b": "maximize", "c": "maximize"}) == [1, 2]
    assert dominates(rows[0], rows[1], {"a": "minimize", "b": "minimize", "c": "minimize"})
    assert not dominates(rows[0], rows[0], {"a": "minimize"})  # equal points do not dominate


def test_bad_input_is_reported():
    with pytest.raises(ConfigError, match="row 1 has no numeric value"):
        pareto_front([{"accuracy": 1.0, "ms": 1.0}, {"accuracy": 1.0}], MAX_MIN)
    with pytest.raises(ConfigError, match="'maximize' or 'minimize'"):
        pareto_front([], {"accuracy": "up"})


def test_table_and_plot(tmp_path):
    rows = [{"trial": 0, "widths": [8, 16], "accuracy": 0.9, "ms": 2.0}, {"trial": 1, "widths": [4, 8], "accuracy": 0.8, "ms": 1.0}]
    assert front_markdown(rows, ["trial", "widths", "accuracy"]).splitlines()[3] == "| 1 | 4-8 | 0.8000 |"
    path = plot_front(rows, tmp_path / "front.png", x="ms", highlight={"chosen": rows[0]})
    assert path.read_bytes()[:4] == b"\x89PNG" and [p.name for p in tmp_path.iterdir()] == ["front.png"]
