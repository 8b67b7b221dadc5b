#!/usr/bin/env bash
# Creates .venv with Python 3.11 and installs the project (and its dev tools with --dev).
# Idempotent: re-installs only when pyproject.toml changed. Used by run.sh, run-tests.sh, .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=""
for c in python3.11 python3 python; do
  if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 11) else 1)'; then
    PY="$c"; break
  fi
done
[ -n "$PY" ] || { echo "bootstrap: Python >= 3.11 is required" >&2; exit 2; }
EXTRAS="${1:-}"
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($PY --version)" >&2
  "$PY" -m venv .venv
fi
STAMP=".venv/.installed${EXTRAS:+-$EXTRAS}"
HASH="$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$HASH" ]; then
  echo "bootstrap: installing dependencies (first time: a few minutes)" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip >&2
  if [ -n "$EXTRAS" ]; then
    .venv/bin/python -m pip install --quiet -e ".[$EXTRAS]" >&2
  else
    .venv/bin/python -m pip install --quiet -e . >&2
  fi
  echo "$HASH" > "$STAMP"
fi
