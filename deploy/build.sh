#!/usr/bin/env bash
# Builds the muninn:local image from the repository's source: a static
# binary (CGO_ENABLED=0) copied into an image FROM scratch. Idempotent:
# run it again after changing the code; an unchanged binary reuses the
# cached image layer.
#
#   deploy/build.sh                 # tag muninn:local
#   IMAGE=muninn:dev deploy/build.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
image="${IMAGE:-muninn:local}"

cd "$repo"
version="$(git describe --always --dirty 2>/dev/null || echo dev)"
CGO_ENABLED=0 GOOS=linux go build -trimpath -o "$here/muninn.tmp" ./cmd/muninn
# Replace the binary only when it changed, so docker's layer cache holds.
if ! cmp -s "$here/muninn.tmp" "$here/muninn" 2>/dev/null; then
  mv "$here/muninn.tmp" "$here/muninn"
else
  rm -f "$here/muninn.tmp"
fi
docker build -q -t "$image" "$here" >/dev/null
echo "built $image ($version) from $here/muninn"
