#!/usr/bin/env bash
# Regenerates the checked-in Go gRPC code of the Kubo shim from proto/ (`make proto-go`).
#   scripts/genproto-go.sh          write shim/gen/walrusdsv1/*.pb.go
#   scripts/genproto-go.sh --check  fail when the checked-in code differs from a fresh generation
#
# protoc is the one bundled with grpcio-tools (pinned in pyproject.toml), so no system protoc is
# needed; the Go plugins are installed with `go install` at the pinned versions below into
# build/tools, so every machine generates byte-identical code.
set -euo pipefail
cd "$(dirname "$0")/.."

PROTOC_GEN_GO_VERSION=v1.36.12      # = google.golang.org/protobuf in shim/go.mod
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

PY=${PY:-.venv/bin/python}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
TOOLS=$PWD/build/tools

install_tool() { # name module version
  local stamp="$TOOLS/.$1-$3"
  if [ ! -x "$TOOLS/$1" ] || [ ! -f "$stamp" ]; then
    GOBIN=$TOOLS GOFLAGS=-buildvcs=false "$GO" install "$2@$3"
    touch "$stamp"
  fi
}
mkdir -p "$TOOLS"
install_tool protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
install_tool protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
PATH="$TOOLS:$PATH" "$PY" -m grpc_tools.protoc -I proto \
  --go_out="$out" --go_opt=paths=source_relative \
  --go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
  proto/walrusds/v1/datastore.proto

dest=shim/gen/walrusdsv1
if [ "${1:-}" = "--check" ]; then
  for f in datastore.pb.go datastore_grpc.pb.go; do
    if ! cmp -s "$out/walrusds/v1/$f" "$dest/$f"; then
      echo "generated code is stale: $dest/$f differs from proto/ (run: make proto-go)" >&2
      exit 1
    fi
  done
  echo "generated Go protobuf code is current"
  exit 0
fi
mkdir -p "$dest"
cp "$out/walrusds/v1/datastore.pb.go" "$out/walrusds/v1/datastore_grpc.pb.go" "$dest/"
echo "wrote $dest/datastore.pb.go and $dest/datastore_grpc.pb.go"
