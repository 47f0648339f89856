#!/usr/bin/env bash
# Set everything up, then run the test suite. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
.venv/bin/ruff check --quiet src tests bench scripts || { echo "lint failed: fix the findings above (many with .venv/bin/ruff check --fix)" >&2; exit 1; }
# -m "" selects every test, the `bench` ones (each benchmark's --quick run) included; a plain
# `pytest` skips those (pyproject.toml's addopts) for a quick run of the default suite.
.venv/bin/python -m pytest -n 2 -m "" "$@"  # the suite is written for the machine's 2 cores
rc=$?
# pytest exits 5 when it collected nothing: that is a broken suite, not a pass.
if [ "$rc" = 5 ]; then echo "no tests were collected" >&2; exit 1; fi
exit "$rc"
