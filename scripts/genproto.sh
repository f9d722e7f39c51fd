#!/usr/bin/env bash
# Regenerates the checked-in gRPC code from proto/ (one command: `make proto`).
#   scripts/genproto.sh          write walrusds/v1/*_pb2*.py[i]
#   scripts/genproto.sh --check  fail when the checked-in code differs from a fresh generation
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
out=.
if [ "${1:-}" = "--check" ]; then
  out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
fi
PATH="$(dirname "$PY"):$PATH" "$PY" -m grpc_tools.protoc -I proto \
  --python_out="$out" --grpc_python_out="$out" --mypy_out="$out" --mypy_grpc_out="$out" \
  proto/walrusds/v1/datastore.proto
if [ "${1:-}" = "--check" ]; then
  for f in datastore_pb2.py datastore_pb2.pyi datastore_pb2_grpc.py datastore_pb2_grpc.pyi; do
    if ! cmp -s "$out/walrusds/v1/$f" "walrusds/v1/$f"; then
      echo "generated code is stale: walrusds/v1/$f differs from proto/ (run: make proto)" >&2
      exit 1
    fi
  done
  echo "generated Python protobuf code is current"
fi
