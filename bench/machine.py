"""The machine a run measured: cores, memory, load, and the versions of what was measured."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import grpc
import psycopg

from walrusds.localpg import find_bindir


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "not found"
    return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 \
        else "not found"


def describe() -> dict[str, Any]:
    mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    from bench.gobench import go_binary
    from bench.kubo import IPFS
    return {
        "cores": os.cpu_count(), "cpu": cpu, "memory_gib": round(int(mem) / 2**20, 1),
        "kernel": platform.release(), "python": platform.python_version(),
        "grpcio": grpc.__version__, "psycopg": psycopg.__version__,
        "postgres": _first_line([str(find_bindir() / "postgres"), "--version"]),
        "go": _first_line([go_binary(), "version"]),
        "ipfs_walrus": _first_line([str(IPFS), "version"]) if IPFS.exists() else "not built",
        "load_before": loadavg(),
    }
