"""CPU seconds per GiB verified: the check every packed read makes before bytes leave walrusds.

The read path (walrusds/reader.py) compares each value's size and SHA-256 with the digest the
index stored at Put time and, for a Kubo block key, the multihash the key names
(walrusds/verify.py): for a sha2-256 key that is the same digest (one hash), for another
function a second hash. This measures exactly that check, single-threaded, as process CPU
time, for block sizes from 1 KiB to 1 MiB::

    .venv/bin/python -m bench.verify_cpu [--mib 256] [--json out.json]

Each case verifies about ``--mib`` MiB (a pool of distinct values, cycled) and reports CPU
seconds per GiB and the cost per value. The figure is verification alone: no HTTP, no gRPC.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from walrusds.index.entries import Located
from walrusds.reader import _intact
from walrusds.verify import block_key

SIZES = (1024, 16 * 1024, 256 * 1024, 1024 * 1024)
POOL_BYTES = 32 * 1024 * 1024
KEYS: dict[str, Callable[[bytes], bytes]] = {
    "sha2-256 block key": block_key,
    "blake2b-256 block key": lambda v: block_key(v, 0xB220),
    "plain key (digest only)": lambda v: b"/pins/" + hashlib.sha256(v).hexdigest().encode(),
}


def case(size: int, kind: str, target_bytes: int) -> dict[str, Any]:
    count = max(1, min(POOL_BYTES // size, target_bytes // size))
    entries = []
    for _ in range(count):
        value = os.urandom(size)
        entries.append((Located(KEYS[kind](value), size, hashlib.sha256(value).digest(), None,
                                1, 0, "b", "stored", 10), value))
    rounds = max(1, target_bytes // (count * size))
    started = time.process_time()
    for _ in range(rounds):
        for entry, value in entries:
            if not _intact(entry, value):
                raise AssertionError("a value failed its own check")
    cpu = time.process_time() - started
    verified = rounds * count * size
    return {"size": size, "key": kind, "values": rounds * count, "bytes": verified,
            "cpu_seconds": round(cpu, 3),
            "cpu_seconds_per_gib": round(cpu / verified * 2**30, 3),
            "us_per_value": round(cpu / (rounds * count) * 1e6, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mib", type=int, default=256, help="MiB verified per case")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    results = [case(size, kind, args.mib * 2**20) for kind in KEYS for size in SIZES]
    machine = {"cpu": next((line.split(":", 1)[1].strip() for line in
                            Path("/proc/cpuinfo").read_text().splitlines()
                            if line.startswith("model name")), platform.processor()),
               "cores": os.cpu_count(), "python": platform.python_version(),
               "openssl": __import__("ssl").OPENSSL_VERSION}
    print(f"{machine['cpu']}, {machine['cores']} cores, Python {machine['python']}, "
          f"{machine['openssl']}; {args.mib} MiB per case, one thread\n")
    print(f"{'key':26} {'value size':>10} {'CPU s/GiB':>10} {'us/value':>10}")
    for r in results:
        size = (f"{r['size'] // 1024} KiB" if r["size"] < 2**20
                else f"{r['size'] // 2**20} MiB")
        print(f"{r['key']:26} {size:>10} {r['cpu_seconds_per_gib']:>10.3f} "
              f"{r['us_per_value']:>10.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
