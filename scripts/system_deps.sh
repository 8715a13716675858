#!/usr/bin/env bash
# Debian packages FFCV needs to build from source: pkg-config, OpenCV and libjpeg-turbo headers.
# Installs them with apt-get when missing (as root, or with sudo); otherwise says what to run.
set -euo pipefail
if pkg-config --exists opencv4 libturbojpeg 2>/dev/null; then
  exit 0
fi
PKGS="pkg-config libopencv-dev libturbojpeg0-dev"
if [ "$(id -u)" = 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  SUDO="sudo"
else
  echo "error: FFCV needs Debian packages '$PKGS'; run: sudo apt-get install -y $PKGS  (then re-run make)" >&2
  exit 1
fi
echo "installing $PKGS (FFCV build dependencies)"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $PKGS >/dev/null
