#!/usr/bin/env bash
# Installs what walrusds needs on a fresh machine, idempotently:
#   - PostgreSQL server binaries (Debian's packages) when none are found;
#   - a Python virtual environment in .venv with walrusds and its development tools.
# Safe to run again: every step checks before it acts.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv

have_pg_server() {
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then return 0; fi
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && return 0
  command -v initdb >/dev/null 2>&1
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    echo "setup: need root to run: $*" >&2; return 1; fi
}

apt_install() {
  command -v apt-get >/dev/null 2>&1 || { echo "setup: please install: $*" >&2; return 1; }
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "$@"
}

if ! have_pg_server; then
  echo "setup: installing PostgreSQL server binaries"
  apt_install postgresql
fi

# initdb refuses root: private clusters run as an unprivileged user. Debian's package creates
# 'postgres'; make sure one exists when the server came from elsewhere.
if [ "$(id -u)" = 0 ] && ! id -u "${WALRUSDS_PG_OS_USER:-postgres}" >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin "${WALRUSDS_PG_OS_USER:-postgres}"
fi

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: walrusds needs Python >= 3.11 ($PYTHON is $("$PYTHON" -V 2>&1))" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV" 2>/dev/null || { apt_install python3-venv && "$PYTHON" -m venv "$VENV"; }
fi

stamp="$VENV/.installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
