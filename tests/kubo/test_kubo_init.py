"""``walrusds kubo-init`` against real services and the real ``ipfs-walrus``: the repo it makes
and every mistake it must explain instead of leaving a broken repo."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kubo.ipfs import Kubo
from tests.kubo.support import WALRUSDS, Service, ipfs_walrus, serve


def kubo_init(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WALRUSDS, "kubo-init", str(repo), "--profile", "test",
                           "--ipfs", str(ipfs_walrus()), *args],
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def service(pg_dsn: str, schema: str, tmp_path: Path) -> Iterator[str]:
    proc, addr = serve(tmp_path, "walrusds", dsn=pg_dsn, schema=schema, dataset="kubo-test")
    yield addr
    assert proc.stop() == 0, proc.log.read_text()


def test_creates_a_repo_with_blocks_on_walrusds(service: str, tmp_path: Path) -> None:
    repo = tmp_path / "ipfs"
    made = kubo_init(repo, "--addr", service, "--addr", service, "--dataset", "kubo-test")
    assert made.returncode == 0, made.stderr
    assert "upload node" in made.stdout
    # exactly what Kubo compares byte for byte: only the dataset identifies /blocks
    assert (repo / "datastore_spec").read_text().strip() == (
        '{"mounts":[{"dataset":"kubo-test","mountpoint":"/blocks","type":"walrusds"},'
        '{"mountpoint":"/","path":"datastore","type":"levelds"}],"type":"mount"}')
    mounts = json.loads((repo / "config").read_text())["Datastore"]["Spec"]["mounts"]
    blocks = next(m for m in mounts if m["mountpoint"] == "/blocks")
    assert blocks["type"] == "walrusds" and blocks["addresses"] == [service, service]

    node = Kubo(repo)
    data = os.urandom(300_000)
    source = tmp_path / "data.bin"
    source.write_bytes(data)
    cid = node.text("add", "-Q", str(source)).strip()
    assert node.run("cat", cid).stdout == data

    again = kubo_init(repo, "--addr", service)
    assert again.returncode == 1 and "already holds a Kubo repo" in again.stderr


def test_explains_what_is_wrong(service: str, tmp_path: Path) -> None:
    wrong_dataset = kubo_init(tmp_path / "a", "--addr", service, "--dataset", "other")
    assert wrong_dataset.returncode == 1
    assert "serves dataset 'kubo-test', not 'other'" in wrong_dataset.stderr

    nobody = f"unix:{tmp_path / 'nobody.sock'}"
    unreachable = kubo_init(tmp_path / "b", "--addr", nobody)
    assert unreachable.returncode == 1
    assert f"cannot reach walrusds at {nobody}" in unreachable.stderr

    no_binary = subprocess.run(
        [*WALRUSDS, "kubo-init", str(tmp_path / "c"), "--addr", service,
         "--ipfs", str(tmp_path / "missing-ipfs")],
        capture_output=True, text=True, timeout=60, check=False)
    assert no_binary.returncode == 1 and "make shim" in no_binary.stderr
    for failed in ("a", "b", "c"):
        assert not (tmp_path / failed / "config").exists()
    assert "Traceback" not in wrong_dataset.stderr + unreachable.stderr + no_binary.stderr


def test_refuses_addresses_of_different_datasets(pg_dsn: str, schema: str, service: str,
                                                 tmp_path: Path) -> None:
    other, other_addr = serve(tmp_path, "other", dsn=pg_dsn, schema=schema + "_b",
                              dataset="kubo-test")
    try:
        made = kubo_init(tmp_path / "ipfs", "--addr", f"{service},{other_addr}")
    finally:
        other.stop()
    assert made.returncode == 1 and "serve different datasets" in made.stderr


def test_retrieval_node_needs_an_initialized_dataset(pg_dsn: str, schema: str,
                                                     service: str, tmp_path: Path) -> None:
    reader: Service
    reader, reader_addr = serve(tmp_path, "reader", dsn=pg_dsn, schema=schema,
                                read_only=True, dataset="kubo-test")
    try:
        early = kubo_init(tmp_path / "early", "--addr", reader_addr)
        assert early.returncode == 1
        assert "initialize an upload node on it first" in early.stderr
        assert kubo_init(tmp_path / "upload", "--addr", service).returncode == 0
        late = kubo_init(tmp_path / "retrieval", "--addr", reader_addr)
        assert late.returncode == 0, late.stderr
        assert "retrieval node (read-only service)" in late.stdout
    finally:
        assert reader.stop() == 0, reader.log.read_text()


def test_token_reaches_the_service_through_kubo(pg_dsn: str, schema: str,
                                                tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("a-token-long-enough-to-be-accepted\n")
    token.chmod(0o600)
    guarded, addr = serve(tmp_path, "guarded", dsn=pg_dsn, schema=schema,
                          security_token_file=str(token))
    try:
        refused = kubo_init(tmp_path / "no-token", "--addr", addr)
        assert refused.returncode == 1 and "refused the token" in refused.stderr
        made = kubo_init(tmp_path / "ipfs", "--addr", addr, "--token-file", str(token))
        assert made.returncode == 0, made.stderr
        spec = (tmp_path / "ipfs" / "datastore_spec").read_text()
        assert "token" not in spec and str(tmp_path) not in spec
        node = Kubo(tmp_path / "ipfs")
        data = os.urandom(5000)
        (tmp_path / "f").write_bytes(data)
        cid = node.text("add", "-Q", str(tmp_path / "f")).strip()
        assert node.run("cat", cid).stdout == data
    finally:
        assert guarded.stop() == 0, guarded.log.read_text()
