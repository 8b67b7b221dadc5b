#!/usr/bin/env bash
# Installs an unpacked bundle for all users: copies it to /opt/hcc-response (or $1) and adds the
# desktop entry and icon. Needs root for /opt; per-user data is never written inside the bundle.
set -euo pipefail
SRC="$(cd "$(dirname "$0")" && pwd)"
DEST="${1:-/opt/hcc-response}"
if [ "$SRC" != "$DEST" ]; then
  mkdir -p "$DEST"
  cp -a "$SRC/." "$DEST/"
fi
sed "s#/opt/hcc-response#$DEST#g" "$SRC/hcc-response.desktop" > /usr/share/applications/hcc-response.desktop
install -D -m 0644 "$SRC/hcc-response.png" /usr/share/icons/hicolor/256x256/apps/hcc-response.png
ln -sf "$DEST/hcc-response" /usr/local/bin/hcc-response
echo "installed to $DEST; run 'hcc-response self-test' to check the installation"
