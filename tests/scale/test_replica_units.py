"""The replica settings, the routing rules and the relocating reader, without servers."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from walrusds.config import load_config
from walrusds.errors import BlobLost, ConfigError, IndexUnavailable
from walrusds.index.entries import Index, Located
from walrusds.index.immutable import is_immutable
from walrusds.index.replica import ReplicaReads, check_replica_node
from walrusds.index.replica_watch import ReplicaWatch
from walrusds.logging_setup import config_secrets
from walrusds.replica_reader import RelocatingReader
from walrusds.verify import HASHES, block_key, expected_digest

PRIMARY = "host=db1 dbname=walrusds user=walrusds"
REPLICA = "host=db2 dbname=walrusds user=walrusds password=s3cret-replica-pw"


def env(**extra: str) -> dict[str, str]:
    return {"WALRUSDS_POSTGRES_DSN": PRIMARY, **extra}


def test_the_replica_settings_come_from_the_environment() -> None:
    config = load_config(env=env(WALRUSDS_POSTGRES_REPLICA_DSN=REPLICA,
                                 WALRUSDS_POSTGRES_REPLICA_MAX_LAG="2.5",
                                 WALRUSDS_POSTGRES_REPLICA_QUERIES="yes",
                                 WALRUSDS_READ_ONLY="true"))
    assert config.postgres.replica_dsn == REPLICA
    assert config.postgres.replica_max_lag == 2.5
    assert config.postgres.replica_queries
    check_replica_node(config)
    defaults = load_config(env=env())
    assert (defaults.postgres.replica_dsn, defaults.postgres.replica_max_lag,
            defaults.postgres.replica_queries) == ("", 10.0, False)


@pytest.mark.parametrize(("settings", "message"), [
    ({"WALRUSDS_POSTGRES_DSN": "", "WALRUSDS_POSTGRES_REPLICA_DSN": REPLICA},
     "postgres.replica_dsn needs postgres.dsn"),
    ({"WALRUSDS_POSTGRES_REPLICA_DSN": PRIMARY}, "names the same server as postgres.dsn"),
    ({"WALRUSDS_POSTGRES_REPLICA_DSN": "host='db2 password=s3cret-replica-pw"},
     "postgres.replica_dsn is not a valid"),
    ({"WALRUSDS_POSTGRES_REPLICA_QUERIES": "true"}, "replica_queries needs postgres.replica_dsn"),
    ({"WALRUSDS_POSTGRES_REPLICA_MAX_LAG": "0"}, "postgres.replica_max_lag must be between"),
    ({"WALRUSDS_POSTGRES_REPLICA_MAX_LAG": "soon"}, "postgres.replica_max_lag: expected float"),
])
def test_replica_mistakes_name_the_key(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load_config(env=env(**settings))
    assert "s3cret" not in str(err.value)


def test_a_replica_is_for_read_only_nodes() -> None:
    config = load_config(env=env(WALRUSDS_POSTGRES_REPLICA_DSN=REPLICA))  # --read-only may follow
    with pytest.raises(ConfigError, match="for read-only retrieval nodes"):
        check_replica_node(config)
    check_replica_node(dataclasses.replace(config, read_only=True))


def test_the_replica_password_is_a_secret() -> None:
    config = load_config(env=env(WALRUSDS_POSTGRES_REPLICA_DSN=REPLICA))
    assert "s3cret-replica-pw" in config_secrets(config)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(HASHES)), st.binary(max_size=64), st.integers(0, 7),
       st.sampled_from([b"", b"A", b"AAAAAAAA", b"=", b"a", b"_", b"0"]), st.booleans())
def test_immutable_keys_are_exactly_the_checked_block_keys(
        code: int, value: bytes, cut: int, tail: bytes, mounted_at_root: bool) -> None:
    key = block_key(value, code)
    key = (b"/blocks" + key if mounted_at_root else key)[:len(key) - cut] + tail
    assert is_immutable(key) == (expected_digest(key) is not None)


@given(st.binary(max_size=120))
def test_any_key_gets_the_verdict_of_expected_digest(key: bytes) -> None:
    assert is_immutable(key) == (expected_digest(key) is not None)
    segment = b"/" + key.translate(bytes.maketrans(bytes(range(256)),
                                                   b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567" * 8))
    assert is_immutable(segment) == (expected_digest(segment) is not None)


# -- routing ---------------------------------------------------------------------------------

class FakeIndex:
    def __init__(self, rows: dict[bytes, int], fail: bool = False) -> None:
        self.rows = rows
        self.fail = fail
        self.asked: list[list[bytes]] = []

    async def sizes(self, keys: Sequence[bytes]) -> dict[bytes, int]:
        self.asked.append(list(keys))
        if self.fail:
            raise IndexUnavailable("lookup: Postgres is unavailable (OperationalError)")
        return {k: self.rows[k] for k in keys if k in self.rows}


class FakeWatch:
    def __init__(self, usable: bool = True) -> None:
        self.usable = usable
        self.failures: list[BaseException] = []

    def failed(self, exc: BaseException) -> None:
        self.failures.append(exc)
        self.usable = False


A, B, C = block_key(b"a"), block_key(b"b"), block_key(b"c")
MUTABLE = b"/local/pins"


def routing(primary: FakeIndex, replica: FakeIndex, watch: FakeWatch) -> ReplicaReads:
    return ReplicaReads(cast(Index, primary), cast(Index, replica), cast(ReplicaWatch, watch))


async def test_block_keys_go_to_the_replica_first_and_misses_to_the_primary() -> None:
    primary = FakeIndex({A: 1, B: 2, MUTABLE: 9})
    replica = FakeIndex({A: 1})  # B was written a moment ago: not replayed yet
    reads = routing(primary, replica, FakeWatch())
    assert await reads.sizes([A, B, C, MUTABLE]) == {A: 1, B: 2, MUTABLE: 9}
    assert replica.asked == [[A, B, C]]  # the mutable key is never asked of the replica
    assert primary.asked == [[B, C, MUTABLE]]
    s = reads.stats
    assert (s.replica, s.after_miss, s.mutable, s.skipped) == (1, 2, 1, 0)


async def test_an_unusable_or_failing_replica_is_skipped() -> None:
    primary, replica = FakeIndex({A: 1}), FakeIndex({A: 1}, fail=True)
    watch = FakeWatch()
    reads = routing(primary, replica, watch)
    assert await reads.sizes([A]) == {A: 1}
    assert len(watch.failures) == 1 and not watch.usable
    assert await reads.sizes([A]) == {A: 1}
    assert len(replica.asked) == 1  # not asked again until the watch finds it usable
    assert reads.stats.skipped == 2
    assert reads.query_index() is None


async def test_queries_go_to_the_replica_only_when_asked_and_usable() -> None:
    replica = FakeIndex({})
    watch = FakeWatch()
    reads = routing(FakeIndex({}), replica, watch)
    assert reads.query_index() is None
    reads.queries = True
    assert reads.query_index() is cast(Index, replica)
    watch.usable = False
    assert reads.query_index() is None


# -- relocating reads --------------------------------------------------------------------------

def located(key: bytes, *, value: bytes | None = None, pack: int = 1) -> Located:
    return Located(key=key, size=1, digest=b"\0" * 32, value=value,
                   pack_id=None if value is not None else pack,
                   pack_offset=None if value is not None else 0,
                   blob_id=None if value is not None else f"blob-{pack}", pack_state="stored")


class FakeReader:
    def __init__(self, lose: set[str]) -> None:
        self.lose = lose
        self.read: list[list[Located]] = []

    async def read_packed(self, entries: Sequence[Located]) -> dict[bytes, bytes]:
        self.read.append(list(entries))
        if any(e.blob_id in self.lose for e in entries):
            raise BlobLost("gone")
        return {e.key: f"from {e.blob_id}".encode() for e in entries}


async def test_a_failed_read_at_a_stale_location_is_read_where_the_primary_says() -> None:
    provisional, loud = FakeReader({"blob-1"}), FakeReader(set())
    current = {A: located(A, value=b"staged again"), B: located(B, pack=2)}  # C: deleted

    async def relocate(keys: Sequence[bytes]) -> dict[bytes, Located]:
        return {k: current[k] for k in keys if k in current}

    reader = RelocatingReader(provisional, loud, relocate)
    out = await reader.read_packed([located(A), located(B), located(C)])
    assert out == {A: b"staged again", B: b"from blob-2"}
    assert [[e.key for e in batch] for batch in loud.read] == [[B]]


async def test_a_read_that_fails_where_the_primary_says_too_is_data_loss() -> None:
    provisional, loud = FakeReader({"blob-1"}), FakeReader({"blob-1"})

    async def relocate(keys: Sequence[bytes]) -> dict[bytes, Located]:
        return {k: located(k) for k in keys}

    with pytest.raises(BlobLost):
        await RelocatingReader(provisional, loud, relocate).read_packed([located(A)])
    assert len(loud.read) == 1  # the node's own reader, which records the loss
