"""The import's parts on their own, on real files: flatfs sharding, the progress file, the
Go-compatible JSON of datastore_spec, and the repo lock."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from walrusds.errors import ConfigError
from walrusds.importer.flatfs import Sharding, block_files, parse_sharding, shard_dirs
from walrusds.importer.journal import DoneDir, Journal
from walrusds.importer.repolock import RepoLock, RepoLocked, is_locked
from walrusds.importer.switch import go_json

EMPTY_DIR = "CIQFTFEEHEDF6KLBT32BFAGLXEZL4UWFNWM4LFTLMXQBCERZ6CMLX3Y"


@pytest.mark.parametrize(("ident", "name", "directory"), [
    ("/repo/flatfs/shard/v1/next-to-last/2", EMPTY_DIR, "X3"),  # where stock Kubo puts it
    ("/repo/flatfs/shard/v1/next-to-last/2", "AB", "_A"),
    ("/repo/flatfs/shard/v1/next-to-last/2", "A", "__"),
    ("/repo/flatfs/shard/v1/prefix/3", "CIQA", "CIQ"),
    ("/repo/flatfs/shard/v1/prefix/3", "AB", "AB_"),
    ("/repo/flatfs/shard/v1/suffix/2", "CIQA", "QA"),
    ("/repo/flatfs/shard/v1/suffix/3", "AB", "_AB"),
])
def test_sharding_names_the_directory_flatfs_uses(ident: str, name: str,
                                                 directory: str) -> None:
    sharding = parse_sharding(ident + "\n", Path("SHARDING"))
    assert str(sharding) == ident
    assert sharding.directory(name) == directory


@pytest.mark.parametrize("ident", [
    "", "/repo/flatfs/shard/v2/next-to-last/2", "/repo/flatfs/shard/v1/middle/2",
    "/repo/flatfs/shard/v1/prefix/x", "/repo/flatfs/shard/v1/prefix/0",
    "/repo/flatfs/shard/v1/prefix", "next-to-last/2",
])
def test_unknown_sharding_is_refused(ident: str) -> None:
    with pytest.raises(ConfigError, match="SHARDING names"):
        parse_sharding(ident, Path("SHARDING"))


def test_listing_skips_what_is_not_a_block(tmp_path: Path) -> None:
    (tmp_path / ".temp").mkdir()
    (tmp_path / ".temp" / "AAAA.data").write_bytes(b"staged")
    (tmp_path / "X3").mkdir()
    (tmp_path / "X3" / f"{EMPTY_DIR}.data").write_bytes(b"")
    (tmp_path / "X3" / "put-123").write_bytes(b"half written")
    (tmp_path / "X3" / ".data").write_bytes(b"")
    (tmp_path / "X3" / "WRONGX.data").write_bytes(b"")
    (tmp_path / "SHARDING").write_text("/repo/flatfs/shard/v1/next-to-last/2\n")
    assert [d.name for d in shard_dirs(tmp_path)] == ["X3"]
    found = list(block_files(tmp_path, "X3", Sharding("next-to-last", 2)))
    assert [(b.key, b.misplaced) for b in found] == [
        (f"/{EMPTY_DIR}".encode(), False), (b"/WRONGX", True)]


def test_progress_file_survives_a_torn_line_and_belongs_to_one_dataset(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "dataset-a")
    journal.load()
    journal.open()
    journal.mark_done(journal_record("AA", 5))
    journal.mark_done(journal_record("AB", 6))
    journal.close()
    with (tmp_path / "walrusds-import.progress").open("a") as f:
        f.write("done AC 7 1")  # a crash while this line was written

    again = Journal(tmp_path, "dataset-a")
    again.load()
    assert sorted(again.done) == ["AA", "AB"]
    assert again.is_done("AA", 5) is not None
    assert again.is_done("AB", 999) is None  # changed since: scanned again

    other = Journal(tmp_path, "dataset-b")
    other.load()
    assert other.done == {} and "another dataset (dataset-a)" in other.discarded
    other.open()
    other.close()
    assert "dataset dataset-b\n" in (tmp_path / "walrusds-import.progress").read_text()


def journal_record(name: str, mtime: int) -> DoneDir:
    return DoneDir(name, mtime, 3, 300)


def test_go_json_matches_what_kubo_writes() -> None:
    spec = {"type": "mount", "mounts": [
        {"type": "walrusds", "mountpoint": "/blocks", "dataset": "a<b>&c é\u2028"},
        {"type": "levelds", "path": "datastore", "mountpoint": "/"}]}
    assert go_json(spec) == (
        '{"mounts":[{"dataset":"a\\u003cb\\u003e\\u0026c é\\u2028","mountpoint":"/blocks",'
        '"type":"walrusds"},{"mountpoint":"/","path":"datastore","type":"levelds"}],'
        '"type":"mount"}')
    assert json.loads(go_json(spec)) == spec


def test_repo_lock_excludes_another_process(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; "
         "from walrusds.importer.repolock import RepoLock\n"
         "with RepoLock(Path(sys.argv[1])):\n print('locked', flush=True); sys.stdin.read()",
         str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdin is not None
    try:
        assert holder.stdout.readline() == "locked\n"
        assert (tmp_path / "repo.lock").stat().st_size == 0  # Kubo refuses a non-empty one
        assert is_locked(tmp_path)
        with pytest.raises(RepoLocked, match="another ipfs command is using"):
            RepoLock(tmp_path).acquire()
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
    assert not (tmp_path / "repo.lock").exists()  # created by the holder, removed again
    assert not is_locked(tmp_path)


def test_an_api_file_counts_only_when_a_daemon_answers_there(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        (tmp_path / "api").write_text(f"/ip4/127.0.0.1/tcp/{port}")
        with pytest.raises(RepoLocked, match=f"a Kubo daemon answers at /ip4/127.0.0.1/tcp/{port}"):
            RepoLock(tmp_path).acquire()
        assert not (tmp_path / "repo.lock").exists()
    # the listener is gone: a stale api file, as a crashed daemon leaves it
    with RepoLock(tmp_path):
        assert (tmp_path / "repo.lock").exists()
