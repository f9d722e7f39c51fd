"""Kubo level: the same ``ipfs-walrus`` binary on walrusds and on Kubo's default flatfs repo.

``ipfs add`` and ``ipfs cat`` (offline, no daemon) of one large random file and of a tree of
small files, timed as wall time of the whole command as a user runs it. On walrusds ``cat`` is
measured once the added blocks are packed and stored on the emulator, with a freshly started
service (cold: every block is a ranged read from the aggregator). flatfs reads come from the
kernel's page cache: that is what a user of flatfs gets, and the ratio includes it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.stack import REPO

IPFS = REPO / "bin" / "ipfs-walrus"


def ensure_ipfs() -> Path:
    if not IPFS.exists():
        done = subprocess.run([str(REPO / "scripts" / "build-shim.sh")], capture_output=True,
                              text=True, timeout=3600, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"make shim failed:\n{done.stdout}{done.stderr}")
    return IPFS


class Repo:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("IPFS_")}
        self.env["IPFS_PATH"] = str(path)

    def run(self, *args: str, out: bool = True) -> tuple[str, float]:
        start = time.perf_counter()
        done = subprocess.run([str(IPFS), "--offline", *args], env=self.env,
                              stdout=subprocess.PIPE if out else subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=3600, check=False)
        secs = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"ipfs {' '.join(args)}: {done.stderr.decode(errors='replace')}")
        return (done.stdout.decode() if out else ""), secs


def init_flatfs(path: Path) -> Repo:
    repo = Repo(path)
    subprocess.run([str(IPFS), "init", "--profile", "test"], env=repo.env, check=True,
                   capture_output=True, timeout=300)
    return repo


def init_walrusds(path: Path, addr: str) -> Repo:
    done = subprocess.run([sys.executable, "-m", "walrusds", "kubo-init", str(path), "--addr",
                           addr, "--profile", "test", "--ipfs", str(IPFS)],
                          capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"walrusds kubo-init: {done.stdout}{done.stderr}")
    return Repo(path)


def make_inputs(root: Path, big_bytes: int, small_files: int) -> tuple[Path, Path, int]:
    """A random file and a tree of small random files (1-16 KiB); their total sizes."""
    root.mkdir(parents=True, exist_ok=True)
    big = root / "big.bin"
    with big.open("wb") as f:
        for _ in range(big_bytes // 2**20):
            f.write(os.urandom(2**20))
    tree = root / "tree"
    tree.mkdir()
    total = 0
    for i in range(small_files):
        data = os.urandom(1024 * (1 + i % 16))
        (tree / f"f{i:05d}").write_bytes(data)
        total += len(data)
    return big, tree, total


def measure(repo: Repo, big: Path, tree: Path, before_cat: Callable[[], None]
            ) -> dict[str, Any]:
    big_cid, add_big = repo.run("add", "-Q", str(big))
    tree_cid, add_tree = repo.run("add", "-Q", "-r", str(tree))
    before_cat()
    big_cid, tree_cid = big_cid.strip(), tree_cid.strip()
    _, cat_big = repo.run("cat", big_cid, out=False)
    names = sorted(p.name for p in tree.iterdir())
    _, cat_tree = repo.run("cat", *(f"{tree_cid}/{n}" for n in names), out=False)
    return {"add_big_s": add_big, "add_tree_s": add_tree, "cat_big_s": cat_big,
            "cat_tree_s": cat_tree, "big_cid": big_cid, "tree_cid": tree_cid}
