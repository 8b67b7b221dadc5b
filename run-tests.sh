#!/usr/bin/env bash
# Sets up the environment with the dev tools on first use, then runs the whole test suite
# headless. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh dev
export QT_QPA_PLATFORM=offscreen
export PYTHONDONTWRITEBYTECODE=1
exec .venv/bin/python -m pytest "$@"
