#!/usr/bin/env bash
# Proves the GPU path on a machine with one NVIDIA GPU in a few minutes and prints one table
# (see bench/gpu_check.py). Uses the project's .venv when there is one, else python3 (e.g. a
# GPU server's own torch, with pydicom and platformdirs carried as wheels on PYTHONPATH).
# `scripts/gpu_check.sh --device cpu` is the dry run on any machine.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
exec "$PY" bench/gpu_check.py "$@"
