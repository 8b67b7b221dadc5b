#!/usr/bin/env bash
# Takes the screenshots under a real X server (Xvfb) with Qt's xcb platform plugin, the way a
# user's desktop draws them, instead of the offscreen plugin. Needs Xvfb (Debian/Ubuntu:
# apt-get install xvfb) and the xcb plugin's libraries (python -m app.commands.check_platform says which).
# XCB_LIB_DIR=<dir> adds a folder of those libraries unpacked from their .deb files
# (apt-get download libxcb-icccm4 libxcb-keysyms1; dpkg -x ...) without installing them.
# Arguments go to scripts/screenshots.py.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v Xvfb >/dev/null || { echo "screenshots_x11.sh: Xvfb not found (apt-get install xvfb)" >&2; exit 2; }
display=":${XVFB_DISPLAY:-97}"
Xvfb "$display" -screen 0 1920x1200x24 -nolisten tcp &
xvfb_pid=$!
trap 'kill "$xvfb_pid" 2>/dev/null || true' EXIT
sleep 1
export DISPLAY="$display" QT_QPA_PLATFORM=xcb
if [ -n "${XCB_LIB_DIR:-}" ]; then
  export LD_LIBRARY_PATH="${XCB_LIB_DIR}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
.venv/bin/python -m app.commands.check_platform
.venv/bin/python scripts/screenshots.py "$@"
