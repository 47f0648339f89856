#!/usr/bin/env bash
# Set everything up, then run the main job: the default compression recipe (teacher -> distilled
# student -> structured pruning -> int8 -> ONNX) with its report. Running it again resumes the
# run folder: finished stages are kept, an interrupted one continues.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/slimkit run recipes/fashion-mnist.yaml --out runs/fashion-mnist --resume "$@"
