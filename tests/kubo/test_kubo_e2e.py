"""Kubo on walrusds end to end, with the real ``ipfs-walrus`` binary and real services.

Node A (upload) runs on ``walrusds up`` (its own PostgreSQL and Walrus emulator), with 4 MiB
packs so that most blocks are packed onto the emulator while the tests read them. Node B
(retrieval) is its own Kubo repo on a second, read-only ``walrusds serve`` that shares A's
PostgreSQL and reads A's packs from the same emulator. Both repos are made by
``walrusds kubo-init``. The tests share that setup and run in file order; the GC test, which
deletes blocks, comes last.
"""

from __future__ import annotations

import filecmp
import hashlib
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.kubo.ipfs import Kubo
from tests.kubo.support import WALRUSDS, Service, ipfs_walrus, serve, up
from walrusds.emulator.control import EmulatorControl

# The setup builds bin/ipfs-walrus when `make shim` did not (a first build compiles Kubo).
pytestmark = pytest.mark.timeout(1800)

BIG_FILE_BYTES = 32 * 1024 * 1024
SMALL_FILES = 1000


@dataclass
class Nodes:
    tmp: Path
    up: dict[str, Any]  # node A's `walrusds up` details (up.json)
    a: Kubo
    b: Kubo
    big: Path
    big_cid: str
    tree: Path
    tree_cid: str


def kubo_init(repo: Path, addr: str) -> Kubo:
    result = subprocess.run([*WALRUSDS, "kubo-init", str(repo), "--addr", addr,
                             "--profile", "test", "--ipfs", str(ipfs_walrus())],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return Kubo(repo)


def write_tree(root: Path) -> None:
    """SMALL_FILES files of distinct random bytes (no block is shared with anything else)."""
    root.mkdir()
    for i in range(SMALL_FILES):
        (root / f"file-{i:04d}.bin").write_bytes(os.urandom(64 + i % 1900))


@pytest.fixture(scope="module")
def nodes(_pg_reachable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    tmp = tmp_path_factory.mktemp("kubo")
    os.chmod(tmp, 0o711)  # the unprivileged PostgreSQL user must traverse it as root
    config = tmp / "walrusds-a.toml"
    # No pack prefetch: the corruption test corrupts a stored blob and needs Kubo's reads to
    # reach the emulator; a pack read whole by an earlier test would be served from the cache.
    config.write_text("[pack]\ntarget_size = 4194304\nidle = 1.0\n"
                      "[walrus]\nprefetch_reads = 0\n")
    service_a, up_info = up(tmp / "walrusds-a", config)
    service_b: Service | None = None
    try:
        service_b, addr_b = serve(tmp, "walrusds-b", dsn=up_info["postgres_dsn"],
                                  read_only=True, aggregators=up_info["walrus_aggregators"])
        a = kubo_init(tmp / "ipfs-a", up_info["grpc"])
        b = kubo_init(tmp / "ipfs-b", addr_b)
        big = tmp / "random.bin"
        big.write_bytes(os.urandom(BIG_FILE_BYTES))
        tree = tmp / "tree"
        write_tree(tree)
        big_cid = a.text("add", "-Q", str(big)).strip()
        tree_cid = a.text("add", "-Q", "-r", str(tree)).strip()
        yield Nodes(tmp, up_info, a, b, big, big_cid, tree, tree_cid)
    finally:
        if service_b is not None:
            assert service_b.stop() == 0, service_b.log.read_text()
        assert service_a.stop() == 0, service_a.log.read_text()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_retrieval_node_reads_identical_bytes_offline(nodes: Nodes) -> None:
    cat = nodes.b.run("--offline", "cat", nodes.big_cid).stdout
    assert len(cat) == BIG_FILE_BYTES
    assert sha256(cat) == sha256(nodes.big.read_bytes())
    out = nodes.tmp / "got-tree"
    nodes.b.run("--offline", "get", "-o", str(out), nodes.tree_cid)
    names = sorted(p.name for p in nodes.tree.iterdir())
    assert sorted(p.name for p in out.iterdir()) == names
    match, mismatch, errors = filecmp.cmpfiles(nodes.tree, out, names, shallow=False)
    assert (len(match), mismatch, errors) == (SMALL_FILES, [], [])


def test_retrieval_node_refuses_new_blocks(nodes: Nodes) -> None:
    new = nodes.tmp / "not-on-a.bin"
    new.write_bytes(os.urandom(1000))
    result = nodes.b.run("add", "-Q", str(new), check=False)
    assert result.returncode != 0
    assert b"read-only" in result.stderr


def test_repo_stat_and_verify(nodes: Nodes) -> None:
    keys = nodes.a.local_keys()
    stat = nodes.a.text("repo", "stat")
    fields = dict(re.findall(r"^(\w+):\s+(\S+)", stat, re.MULTILINE))
    assert int(fields["NumObjects"]) == len(keys)
    assert int(fields["RepoSize"]) >= BIG_FILE_BYTES
    # 64 MiB / 256 KiB leaves + parents, plus the small files and their directory
    assert len(keys) > BIG_FILE_BYTES // (256 * 1024) + SMALL_FILES
    for node in (nodes.a, nodes.b):
        verify = node.text("repo", "verify")
        assert f"{len(keys)} blocks processed." in verify
        assert verify.endswith("verify complete, all blocks validated.\n")


def test_daemon_serves_and_provides_every_block(nodes: Nodes) -> None:
    keys = nodes.a.local_keys()
    daemon = nodes.a.start_daemon(nodes.tmp / "daemon-a.log")
    try:
        body = httpx.get(f"{daemon.gateway}/ipfs/{nodes.big_cid}", timeout=120).content
        assert sha256(body) == sha256(nodes.big.read_bytes())
        # the provider lists every key of /blocks at start (a full keys-only scan)
        deadline = time.monotonic() + 60
        scheduled = -1
        while scheduled != len(keys):
            stats = nodes.a.text("stats", "provide")
            # "CIDs scheduled:      80", or "1k (1,262)" from a thousand on
            found = re.search(r"CIDs scheduled:\s+(?:\S+ \()?([\d,]+)", stats)
            scheduled = int(found.group(1).replace(",", "")) if found else -1
            assert time.monotonic() < deadline, f"{len(keys)} blocks, provider:\n{stats}"
            time.sleep(0.5)
    finally:
        assert daemon.stop() == 0, daemon.log.read_text()


async def test_verify_names_a_corrupted_block_and_cat_never_returns_it(nodes: Nodes) -> None:
    a = nodes.a
    cids = a.text("refs", "-r", "-u", nodes.big_cid).split()
    block_keys = a.text("cid", "format", "-f", "/%M", "-b", "base32upper", *cids).split()
    cid_of = {key.encode(): cid for key, cid in zip(block_keys, cids, strict=True)}
    with psycopg.connect(nodes.up["postgres_dsn"]) as conn:
        rows = conn.execute(
            'SELECT key, blob_id, "offset", size FROM walrusds.entry_locations '
            "WHERE location = 'packed' AND key = ANY(%s) ORDER BY key",
            (list(cid_of),)).fetchall()
    assert rows, "no block of the big file is packed on the emulator yet"
    key, blob_id, offset, size = rows[len(rows) // 2]
    [damaged] = a.as_local_keys([cid_of[bytes(key)]])
    original = nodes.big.read_bytes()
    async with EmulatorControl(nodes.up["emulator"]) as control:
        await control.corrupt(blob_id, offset + size // 2)
        try:
            verify = a.run("repo", "verify", check=False)
            cat = a.run("cat", nodes.big_cid, check=False)
        finally:
            await control.corrupt(blob_id, offset + size // 2)  # XOR again: the byte is back
    report = (verify.stdout + verify.stderr).decode()
    assert verify.returncode != 0
    assert f"block {damaged} was corrupt" in report, report
    assert report.count("was corrupt") == 1, report
    assert cat.returncode != 0
    assert original.startswith(cat.stdout), "ipfs cat wrote bytes that are not the file's"
    assert len(cat.stdout) < len(original)
    assert a.text("repo", "verify").endswith("verify complete, all blocks validated.\n")


def reachable(node: Kubo, roots: list[str]) -> set[str]:
    """The blocks of the DAGs under roots, as `ipfs refs local` names them."""
    cids = list(roots)
    for root in roots:
        cids += node.text("refs", "-r", "-u", root).split()
    return node.as_local_keys(cids)


def test_gc_removes_exactly_the_unpinned_blocks(nodes: Nodes) -> None:
    a = nodes.a
    tree_blocks = reachable(a, [nodes.tree_cid])
    assert len(tree_blocks) == SMALL_FILES + 1
    assert not tree_blocks & reachable(a, [nodes.big_cid])

    a.run("pin", "rm", nodes.tree_cid)
    before = a.local_keys()
    # what GC must keep: every pinned DAG and the MFS root (`ipfs add` also leaves an unpinned
    # wrapping directory behind, which GC rightly removes)
    keep = reachable(a, [*a.text("pin", "ls", "--type=recursive", "-q").split(),
                         a.text("files", "stat", "--hash", "/").strip()])
    assert tree_blocks <= before - keep
    gc = a.text("repo", "gc")
    removed = a.as_local_keys([line.split()[1] for line in gc.splitlines()
                               if line.startswith("removed ")])
    assert removed == before - keep
    after = a.local_keys()
    assert after == keep
    assert nodes.b.local_keys() == after  # one dataset, seen by both nodes
    cat = a.run("cat", nodes.big_cid).stdout
    assert sha256(cat) == sha256(nodes.big.read_bytes())
