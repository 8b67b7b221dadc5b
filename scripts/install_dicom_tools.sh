#!/usr/bin/env bash
# Installs the system programs the DICOM export and network tests use, where they are missing:
#   orthanc      a real PACS the network tests start on 127.0.0.1 (tests/test_dicomnet_orthanc.py)
#   dicom3tools  David Clunie's dciodvfy, which validates the written SR and captures
# Only with apt-get and root (as CI runs); anywhere else it says so and returns 0, and the tests
# that need these programs skip with the reason. Services are never started by the install
# (policy-rc.d answers 101 in containers; we also pass RUNLEVEL=1), the fixture starts its own.
set -uo pipefail
need=()
command -v Orthanc >/dev/null 2>&1 || need+=(orthanc)
command -v dciodvfy >/dev/null 2>&1 || need+=(dicom3tools)
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
  echo "install_dicom_tools: cannot install ${need[*]} (no apt-get or not root); the tests that need them will skip" >&2
  exit 0
fi
echo "install_dicom_tools: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive RUNLEVEL=1
if ! apt-get install -y -q --no-install-recommends "${need[@]}" >/tmp/install_dicom_tools.log 2>&1; then
  apt-get update -q >>/tmp/install_dicom_tools.log 2>&1 || true
  apt-get install -y -q --no-install-recommends "${need[@]}" >>/tmp/install_dicom_tools.log 2>&1 \
    || echo "install_dicom_tools: apt-get could not install ${need[*]} (see /tmp/install_dicom_tools.log); the tests that need them will skip" >&2
fi
# Debian's orthanc package starts a system service where an init system runs; ours starts its own.
if command -v service >/dev/null 2>&1 && pgrep -x Orthanc >/dev/null 2>&1; then
  service orthanc stop >/dev/null 2>&1 || true
fi
exit 0
