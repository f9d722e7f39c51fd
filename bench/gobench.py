"""Build and run shim/cmd/walrusds-bench, the Go client of the shim package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.stack import REPO

BINARY = REPO / "build" / "walrusds-bench"


def go_binary() -> str:
    found = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(found).exists():
        raise RuntimeError("Go is not installed (looked on PATH and at /usr/local/go/bin/go)")
    return found


def build() -> Path:
    """``go build`` the program (Go's cache makes a rebuild a link)."""
    BINARY.parent.mkdir(exist_ok=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
    done = subprocess.run([go_binary(), "build", "-o", str(BINARY), "./cmd/walrusds-bench"],
                          cwd=REPO / "shim", env=env, capture_output=True, text=True,
                          timeout=1800, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"building walrusds-bench failed:\n{done.stdout}{done.stderr}")
    return BINARY


def run(addr: str, mode: str, **flags: object) -> dict[str, Any]:
    argv = [str(BINARY), "-addr", addr, "-mode", mode]
    for name, value in flags.items():
        argv += [f"-{name}", str(value)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result
