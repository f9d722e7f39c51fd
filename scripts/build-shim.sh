#!/usr/bin/env bash
# Builds bin/ipfs-walrus: Kubo with the walrusds datastore plugin preloaded (`make shim`).
# Idempotent: when bin/ipfs-walrus is newer than every source of the Go module it does nothing,
# and otherwise Go's build cache ($GOCACHE) makes a rebuild mostly a link.
#   scripts/build-shim.sh           build when something changed
#   scripts/build-shim.sh --force   build anyway
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
if [ ! -x "$GO" ] && ! command -v "$GO" >/dev/null 2>&1; then
  echo "build-shim: Go is not installed (looked for go on PATH and /usr/local/go/bin/go)" >&2
  exit 1
fi
out=bin/ipfs-walrus

if [ "${1:-}" != "--force" ] && [ -x "$out" ] &&
  [ -z "$(find shim -newer "$out" \( -name '*.go' ! -name '*_test.go' -o -name go.mod -o -name go.sum \) -print -quit)" ]; then
  echo "build-shim: $out is up to date"
  exit 0
fi

mkdir -p bin
# CGO off: a static binary that needs no C toolchain, and the same build cache entries as the
# shim's tests (tests/test_shim_go.py runs go test with CGO_ENABLED=0 too).
(cd shim && CGO_ENABLED=0 GOFLAGS=-buildvcs=false "$GO" build -o "../$out.tmp" ./cmd/ipfs-walrus)
mv "$out.tmp" "$out"
echo "build-shim: built $out ($("$out" version 2>/dev/null || echo "version unknown"))"
