#!/usr/bin/env bash
# Regenerates the committed protobuf-c parser for scripts/onnx.proto (needs protobuf-c-compiler).
set -euo pipefail
cd "$(dirname "$0")"
out=../Sources/COnnxProto
tmp=$(mktemp -d)
protoc-c --c_out="$tmp" onnx.proto
sed 's|#include "onnx.pb-c.h"|#include "include/onnx.pb-c.h"|' "$tmp/onnx.pb-c.c" > "$out/onnx.pb-c.c"
cp "$tmp/onnx.pb-c.h" "$out/include/onnx.pb-c.h"
rm -rf "$tmp"
echo "wrote $out/onnx.pb-c.c and $out/include/onnx.pb-c.h"
