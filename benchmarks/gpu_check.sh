#!/usr/bin/env bash
# The prepared GPU check (issue 18): run on any machine with an NVIDIA GPU, offline, < 10 min.
#   bash benchmarks/gpu_check.sh [--quick]
# Needs the repository's venv with a CUDA build of torch (README "Install"); TensorRT stages
# run only if tensorrt + pycuda import (pip install -e '.[trt-cu12]' or '.[trt-cu13]').
# Writes benchmarks/results/gpu_check_<date>_<gpu>.json and .md; exit 2 = no CUDA GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
exec timeout --signal=INT 600 python benchmarks/gpu_check.py "$@"
