#!/usr/bin/env bash
# Installs the Debian packages GateScope builds against, if any is missing.
# Needs Swift 6 on PATH (swift.org toolchain); everything else comes from apt.
set -euo pipefail
packages=(libsqlite3-dev libhdf5-dev libopenblas-dev pkg-config)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "setup: swift not found on PATH (install a Swift 6 toolchain)" >&2; exit 1; }
