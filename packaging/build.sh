#!/usr/bin/env bash
# Builds the one-folder bundle dist/hcc-response/ and its archive from a clean clone:
#   bash packaging/build.sh
# Sets up .venv with the packaging extra on first use, runs PyInstaller with the spec, adds the
# Linux desktop entry and icon, runs the frozen self-test offscreen, and writes
# dist/hcc-response-<version>-<os>-<arch>.tar.gz (or .tar.zst when zstd is installed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh package
START=$(date +%s)
VERSION=$(.venv/bin/python -c 'import app; print(app.__version__)')
.venv/bin/pyinstaller --noconfirm --clean --log-level WARN \
  --distpath dist --workpath build/pyinstaller packaging/hcc-response.spec
BUNDLE=dist/hcc-response
install -m 0644 packaging/linux/hcc-response.desktop "$BUNDLE/hcc-response.desktop"
install -m 0644 resources/icons/hcc-response.png "$BUNDLE/hcc-response.png"
install -m 0755 packaging/linux/install.sh "$BUNDLE/install.sh"
BUILT=$(date +%s)

echo "build: frozen self-test (offscreen, offline)" >&2
QT_QPA_PLATFORM=offscreen HCC_RESPONSE_HOME="$(mktemp -d)" "$BUNDLE/hcc-response" self-test

NAME="hcc-response-$VERSION-$(uname -s | tr 'A-Z' 'a-z')-$(uname -m)"
rm -f "dist/$NAME".tar.*
if command -v zstd >/dev/null 2>&1; then
  ARCHIVE="dist/$NAME.tar.zst"
  tar -C dist -cf - hcc-response | zstd -T0 -q -3 -o "$ARCHIVE"
else
  ARCHIVE="dist/$NAME.tar.gz"
  tar -C dist -cf - hcc-response | gzip -1 > "$ARCHIVE"
fi
END=$(date +%s)
echo "build: bundle $BUNDLE ($(du -sh "$BUNDLE" | cut -f1)), archive $ARCHIVE ($(du -sh "$ARCHIVE" | cut -f1))"
echo "build: pyinstaller $((BUILT - START)) s, total with self-test and archive $((END - START)) s"
