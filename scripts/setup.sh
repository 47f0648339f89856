#!/usr/bin/env bash
# Create or reuse .venv in the repository and install slimkit with the pinned versions CI uses.
# Idempotent: a second run only checks that everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "slimkit needs Python 3.10 or newer" >&2; exit 1; }
  "$PY" -m venv .venv
fi
# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
stamp=.venv/.slimkit-installed
if [ ! -f "$stamp" ] || [ constraints.txt -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt "torch==2.13.0"
  # postgres: the PostgreSQL driver, for the shared search storage and its tests; openvino: the
  # OpenVINO runtime and NNCF, int8 runtime candidates; hf: Hugging Face transformers, for the
  # transformer models. Their tests run in CI.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev,postgres,openvino,hf]"
  touch "$stamp"
fi

# Fashion-MNIST: Debian ships it; elsewhere slimkit downloads it on first use.
if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Fashion-MNIST from Debian (dataset-fashion-mnist)..."
  { apt-get install -y -qq dataset-fashion-mnist || { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; }; } >/dev/null \
    || echo "warning: apt-get could not install dataset-fashion-mnist; slimkit will try to download it" >&2
fi
