"""Counts the cases the fuzz tests generated and prints the total at the end of the run.

Each fuzz test records ``fuzz_cases`` with ``record_property``; pytest (and pytest-xdist, which
ships user properties back to the controller) hands them to ``pytest_runtest_logreport``.
"""

from __future__ import annotations

import pytest

_CASES: dict[str, int] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        for key, value in report.user_properties:
            if key == "fuzz_cases":
                _CASES[report.nodeid] = int(value)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if _CASES:
        terminalreporter.write_line(f"fuzz (data loaders, DataConfig): {sum(_CASES.values())} generated cases "
                                    f"in {len(_CASES)} tests, each ending in success or a SlimkitError")
