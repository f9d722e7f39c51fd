"""Profile the service under one benchmark workload with py-spy (a sampling profiler that
attaches to the running ``walrusds serve`` by PID) and print where its time goes.

    .venv/bin/python -m bench.profile has      # Has through the shim, 128 callers, 1M keys
    .venv/bin/python -m bench.profile query    # keys-only Query of 1M keys through the shim

Prints the functions with the most samples (self, then inclusive) from py-spy's collapsed
stacks; bench/analysis.md records what these showed.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from bench import dataset, gobench
from bench.stack import running_stack


def summarize(collapsed: Path, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    out = [f"{total} samples", "", "self:"]
    out += [f"  {c / total:6.1%}  {f}" for f, c in own.most_common(top)]
    out += ["", "inclusive:"]
    out += [f"  {c / total:6.1%}  {f}" for f, c in inclusive.most_common(top)]
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("workload", choices=["has", "query"])
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--seconds", type=int, default=8)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    gobench.build()
    with running_stack() as stack:
        stack.start_service(pack_idle="3600", pack_max_age="3600")
        assert stack.service is not None
        dataset.generate(stack.dsn, "/g/", 0, args.keys)
        out = stack.tmp / "profile.txt"
        result: dict[str, Any] = {}

        def load() -> None:
            if args.workload == "has":
                result.update(gobench.run(stack.address, "lookup", op="has", gen="/g/", lo=0,
                                          hi=args.keys, c=128,
                                          duration=f"{args.seconds + 2}s"))
            else:
                for _ in range(max(1, args.seconds // 6)):
                    result.update(gobench.run(stack.address, "query", prefix="/g"))
        worker = threading.Thread(target=load)
        worker.start()
        subprocess.run([spy, "record", "--pid", str(stack.service.pid), "--duration",
                        str(args.seconds), "--rate", "200", "--format", "raw", "--output",
                        str(out), "--nonblocking"], check=True, capture_output=True)
        worker.join()
        print(result)
        print(summarize(out, args.top))


if __name__ == "__main__":
    main()
