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
# Qt aborts with a one-line message naming the wrong library when its X11 plugin cannot load;
# ask the dynamic linker first and print the exact packages to install (app/platform_check.py).
if ! .venv/bin/python -m app.commands.check_platform; then
  echo "run.sh: not started (see above)" >&2
  exit 2
fi
exec .venv/bin/hcc-response gui "$@"
