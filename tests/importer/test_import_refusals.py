"""What the import refuses, and how it says so: a corrupted block (reported, not imported, the
config untouched unless --skip-corrupt), a repo a daemon holds, paths that are not flatfs Kubo
repos, an unknown sharding, a service that cannot be reached or is read-only. Every refusal is
one line on stderr and exit status 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.importer.support import (
    blocks_mount,
    flatfs_keys,
    one_line_error,
    run_import,
    service_keys,
    summary,
)
from tests.kubo.ipfs import Kubo


def corrupt_one_block(repo: Path) -> bytes:
    """Flip one byte in the middle of a 256 KiB leaf; returns its key."""
    path = next(p for p in sorted((repo / "blocks").glob("*/*.data"))
                if p.stat().st_size == 256 * 1024)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    return b"/" + path.name.removesuffix(".data").encode()


def test_corrupt_block_is_reported_not_imported_and_nothing_switched(
        kubo_repo: Kubo, service: str) -> None:
    repo = kubo_repo.repo
    bad = corrupt_one_block(repo)
    keys = flatfs_keys(repo)
    files = {name: (repo / name).read_bytes() for name in ("config", "datastore_spec")}

    dry = run_import(repo, service, "--dry-run", "--json")
    assert dry.returncode == 1
    assert json.loads(dry.stdout)["bad"] == {"corrupt": 1}
    assert f"corrupt block '{bad.decode()}'" in dry.stderr
    assert service_keys(service) == set()  # a dry run writes nothing, anywhere
    assert sorted(p.name for p in repo.iterdir()) == sorted(
        ["blocks", "config", "datastore", "datastore_spec", "keystore", "version"])

    refused = run_import(repo, service)
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert f"corrupt block '{bad.decode()}'" in refused.stderr
    assert "bytes do not match the sha2-256 multihash in its key" in refused.stderr
    assert "was not switched" in refused.stderr and "--skip-corrupt" in refused.stderr
    assert {name: (repo / name).read_bytes() for name in files} == files
    assert not (repo / "config.pre-walrusds").exists()
    assert service_keys(service) & keys == keys - {bad}

    skipped = summary(run_import(repo, service, "--json", "--skip-corrupt"))
    assert skipped["switched"] and skipped["bad"] == {"corrupt": 1}
    assert skipped["blocks_sent"] == 0
    assert bad not in service_keys(service)
    assert blocks_mount(repo)["type"] == "walrusds"


def test_refuses_a_repo_the_daemon_holds(kubo_repo: Kubo, service: str,
                                         tmp_path: Path) -> None:
    repo = kubo_repo.repo
    config = (repo / "config").read_bytes()
    daemon = kubo_repo.start_daemon(tmp_path / "daemon.log")
    try:
        line = one_line_error(run_import(repo, service))
    finally:
        assert daemon.stop() == 0, daemon.log.read_text()
    assert "the Kubo daemon is using" in line and "repo.lock is locked" in line
    assert "ipfs shutdown" in line
    assert (repo / "config").read_bytes() == config
    assert not (repo / "walrusds-import.progress").exists()
    assert service_keys(service) == set()


@pytest.mark.parametrize(("damage", "message"), [
    ("missing", "does not exist or is not a directory"),
    ("empty", "is not a Kubo repo: it has no config file"),
    ("not-json", "config is not valid JSON"),
    ("leveldb-blocks", "/blocks of {repo} is on 'levelds', not flatfs"),
    ("no-spec", "has no datastore_spec"),
    ("sharding", "names an unknown flatfs sharding '/repo/flatfs/shard/v2/next-to-last/2'"),
    ("no-sharding", "SHARDING is missing"),
])
def test_explains_a_path_it_cannot_import(kubo_repo: Kubo, tmp_path: Path, damage: str,
                                          message: str) -> None:
    # the repo is checked before the service is asked anything: no service is needed
    service = f"unix:{tmp_path / 'not-asked.sock'}"
    repo = kubo_repo.repo
    if damage == "missing":
        repo = tmp_path / "nowhere"
    elif damage == "empty":
        repo = tmp_path / "empty"
        repo.mkdir()
    elif damage == "not-json":
        (repo / "config").write_text("Identity = nope\n")
    elif damage == "leveldb-blocks":
        config = json.loads((repo / "config").read_text())
        blocks = next(m for m in config["Datastore"]["Spec"]["mounts"]
                      if m["mountpoint"] == "/blocks")
        blocks.update(type="levelds", path="blocksdb", compression="none")
        del blocks["shardFunc"], blocks["sync"]
        (repo / "config").write_text(json.dumps(config))
    elif damage == "no-spec":
        (repo / "datastore_spec").unlink()
    elif damage == "sharding":
        (repo / "blocks" / "SHARDING").write_text("/repo/flatfs/shard/v2/next-to-last/2\n")
    elif damage == "no-sharding":
        (repo / "blocks" / "SHARDING").unlink()
    line = one_line_error(run_import(repo, service))
    assert message.format(repo=repo) in line


def test_explains_a_service_it_cannot_use(kubo_repo: Kubo, read_only_service: str,
                                          tmp_path: Path) -> None:
    nobody = f"unix:{tmp_path / 'nobody.sock'}"
    assert f"cannot reach walrusds at {nobody}" in one_line_error(
        run_import(kubo_repo.repo, nobody))
    line = one_line_error(run_import(kubo_repo.repo, read_only_service))
    assert f"{read_only_service} is a read-only walrusds service" in line
    wrong = one_line_error(run_import(kubo_repo.repo, read_only_service, "--dry-run",
                                      "--dataset", "other"))
    assert "serves dataset 'import-test', not 'other'" in wrong
    assert not (kubo_repo.repo / "walrusds-import.progress").exists()
    assert blocks_mount(kubo_repo.repo)["type"] == "flatfs"
