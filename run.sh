#!/usr/bin/env bash
# Sets up the environment on first use, then starts HCC Response (on the demo study when no
# folder is given). Arguments are passed to `hcc-response gui`.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh
if [ "$(uname -s)" = "Linux" ] && [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ] && [ -z "${QT_QPA_PLATFORM:-}" ]; then
  echo "run.sh: no display found; starting with QT_QPA_PLATFORM=offscreen" >&2
  export QT_QPA_PLATFORM=offscreen
fi
exec .venv/bin/hcc-response gui "$@"
