#!/usr/bin/env bash
# Installs what dipviz needs on a Debian machine, skipping whatever is already there.
set -euo pipefail

APT_PACKAGES=(pkg-config libopenblas-dev libpng-dev libprotobuf-c-dev protobuf-c-compiler libonnx-testdata chromium)
# onnx: its wheel carries the test models and the model preparation writes ONNX with it;
# nbformat validates exported notebooks; websocket-client drives Chromium in the browser test;
# kubernetes (the API's Python models) validates emitted Job manifests in the gallery tests.
PIP_PACKAGES=(onnx numpy nbformat websocket kubernetes)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

missing_pip=()
for p in "${PIP_PACKAGES[@]}"; do
  python3 -c "import $p" 2>/dev/null || missing_pip+=("$p")
done
if [ ${#missing_pip[@]} -gt 0 ]; then
  echo "setup: pip installing ${missing_pip[*]}"
  python3 -m pip install --quiet --disable-pip-version-check "${missing_pip[@]/websocket/websocket-client}"
fi

command -v swift >/dev/null || { echo "setup: swift (6.0 or later) is not on PATH" >&2; exit 1; }
