"""Helpers of the import tests: the stock repo's content, running ``walrusds import`` as a
process, and reading keys back from flatfs and from the service."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.kubo.ipfs import Kubo
from tests.kubo.support import WALRUSDS, ipfs_walrus
from walrusds.rpc import open_channel, stub
from walrusds.v1 import datastore_pb2 as pb

DATASET = "import-test"
SMALL_FILES = 40


@dataclass(frozen=True)
class Stock:
    """A Kubo repo made by stock Kubo on flatfs, and what was added to it."""

    repo: Path
    files: dict[str, Path]  # CID → the file added under it
    tree: Path  # a directory of small files
    tree_cid: str

    @property
    def roots(self) -> list[str]:
        return [*self.files, self.tree_cid]


def make_stock_repo(tmp: Path) -> Stock:
    """``ipfs-walrus init --profile test`` (flatfs at /blocks, Kubo's default), then a few MiB
    of random files, one hashed with blake2b-256, and a directory of small files."""
    kubo = Kubo(tmp / "ipfs")
    kubo.run("init", "--profile", "test")
    data = tmp / "data"
    data.mkdir()
    files: dict[str, Path] = {}
    for name, size, extra in (("big.bin", 3 * 1024 * 1024, ()),
                              ("odd.bin", 1024 * 1024 + 1, ("--raw-leaves",)),
                              ("mid.bin", 300_000, ("--cid-version", "1")),
                              ("blake.bin", 70_000, ("--hash", "blake2b-256"))):
        path = data / name
        path.write_bytes(os.urandom(size))
        files[kubo.text("add", "-Q", *extra, str(path)).strip()] = path
    tree = data / "tree"
    tree.mkdir()
    for i in range(SMALL_FILES):
        (tree / f"small-{i:02d}.txt").write_bytes(os.urandom(10 + 97 * i))
    tree_cid = kubo.text("add", "-Q", "-r", str(tree)).strip()
    return Stock(repo=kubo.repo, files=files, tree=tree, tree_cid=tree_cid)


def run_import(repo: Path, addr: str, *args: str, env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``walrusds import --from-flatfs repo --addr addr`` with the checkout's ipfs-walrus."""
    return subprocess.run(
        [*WALRUSDS, "import", "--from-flatfs", str(repo), "--addr", addr,
         "--ipfs", str(ipfs_walrus()), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, **(env or {})})


def summary(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The ``--json`` summary of a finished import."""
    assert result.returncode == 0, result.stdout + result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The error of a refused import: exit status 1, one line on stderr, no traceback."""
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("walrusds import: "), result.stderr
    return lines[0]


def flatfs_keys(repo: Path) -> set[bytes]:
    """The datastore keys of every block file in the repo's flatfs directory."""
    return {b"/" + os.fsencode(p.name[:-len(".data")])
            for p in (repo / "blocks").glob("*/*.data")}


def service_keys(addr: str) -> set[bytes]:
    """Every key the service's dataset holds."""
    with open_channel(addr) as channel:
        return {entry.key
                for page in stub(channel).Query(pb.QueryRequest(prefix=b"/", keys_only=True),
                                                 timeout=60)
                for entry in page.entries}


def blocks_mount(repo: Path) -> dict[str, Any]:
    """The /blocks entry of the repo's Datastore.Spec."""
    config = json.loads((repo / "config").read_text())
    mount: dict[str, Any] = next(m for m in config["Datastore"]["Spec"]["mounts"]
                                 if m["mountpoint"] == "/blocks")
    return mount
