# walrusds: the targets the README and .ci/run use.
#   make run    set up what is missing, then run the whole stack with embedded defaults
#   make test   set up what is missing, then run every check and test
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup run test check lint typecheck proto proto-go proto-check pytest shim clean \
	bench bench-quick chaos

setup:
	@./scripts/setup.sh

run: setup
	$(VENV)/bin/walrusds up

test: setup check pytest

check: lint typecheck proto-check

lint:
	$(VENV)/bin/ruff check walrusds tests bench

typecheck:
	$(VENV)/bin/mypy walrusds tests bench

proto:
	./scripts/genproto.sh

proto-go:
	./scripts/genproto-go.sh

proto-check:
	./scripts/genproto.sh --check
	./scripts/genproto-go.sh --check

# bin/ipfs-walrus: Kubo with the walrusds datastore plugin (idempotent; reuses Go's build cache)
shim:
	./scripts/build-shim.sh

pytest: shim
	$(VENV)/bin/pytest -m "not realnet"

# The crash and fault suite at length (not part of `make test`, which runs it small): more
# Hypothesis examples, SIGKILL rounds, Postgres restarts and cut positions; about half an hour.
chaos: shim
	WALRUSDS_CHAOS_EXAMPLES=200 $(VENV)/bin/pytest tests/chaos

# Benchmarks (not part of `make test`): one run on a private stack, writes bench/results/*.json
# and rewrites bench/RESULTS.md. bench-quick: under ~10 minutes on 2 cores; bench: under ~45.
bench: setup shim
	$(PY) -m bench.run --size full

bench-quick: setup shim
	$(PY) -m bench.run --size quick

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache build
